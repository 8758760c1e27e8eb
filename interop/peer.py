"""The other side of the wire for the all-operations interop tests.

A loopback HTTP server that records each request and answers with a body set by the test, the
zeep renderings of requests and responses, and the comparisons (XML trees, HTTP headers,
result JSON). Independent of the Rust code: it reads only the contract and our WSDL.
"""
import base64
import http.server
import os
import pathlib
import struct
import subprocess
import threading

from lxml import etree

import contract_values as cv

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = os.environ.get("ECGRIDOS_BIN", str(ROOT / "target" / "release" / "ecgridos"))
# ECGRIDOS_WSDL lets a developer point the harness at another copy; CI uses the repository's.
WSDL = pathlib.Path(os.environ.get("ECGRIDOS_WSDL", str(ROOT / "wsdl" / "ECGridOS.wsdl")))
ASMX_PATH = "/v4.1/prod/ECGridOS.asmx"

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XS_NS = "http://www.w3.org/2001/XMLSchema"
MSDATA = "urn:schemas-microsoft-com:xml-msdata"
DIFFGR = "urn:schemas-microsoft-com:xml-diffgram-v1"


class Recorder(http.server.BaseHTTPRequestHandler):
    """Records every POST and answers with the server's current reply."""

    def do_POST(self):  # noqa: N802 (http.server's naming)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                chunk = self.rfile.read(size)
                self.rfile.readline()
                if size == 0:
                    break
                body += chunk
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        server = self.server
        with server.lock:
            server.requests.append((self.path, dict(self.headers.items()), body))
            status, content_type, reply = server.reply
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


class Peer:
    """One loopback server for the whole session."""

    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        self.httpd.lock = threading.Lock()
        self.httpd.requests = []
        self.httpd.reply = (500, "text/plain", b"no reply set")
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d%s" % (self.httpd.server_address[1], ASMX_PATH)

    def expect(self, content_type, body):
        """Answer the next requests with `body`; forget earlier requests."""
        with self.httpd.lock:
            self.httpd.requests = []
            self.httpd.reply = (200, content_type, body)

    def requests(self):
        with self.httpd.lock:
            return list(self.httpd.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def run_call(peer, op_name, pairs, soap, session_id, options_first=False):
    """`ecgridos call OP NAME=VALUE ... --yes` against the peer, no credentials from outside.
    The global options go after the arguments, or before `call` (both are allowed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECGRID")}
    options = ["--endpoint", peer.url, "--session-id", session_id]
    if soap == "1.2":
        options += ["--soap-version", "1.2"]
    # Results are compared value for value with what zeep wrote, secret fields
    # (passwords, private keys) included: without the flag `call` redacts them.
    command = ["call", op_name, *pairs, "--yes", "--show-secrets"]
    args = [BIN, *options, *command] if options_first else [BIN, *command, *options]
    return subprocess.run(args, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=60)


# ---------------------------------------------------------------- zeep renderings


def binding(client, contract, soap):
    """zeep's binding for SOAP 1.1 or 1.2, looked up by the contract's service and port names."""
    port = contract["soap11" if soap == "1.1" else "soap12"]["port"]
    return client.bind(contract["service"], port)._binding


def content_type_for(soap, action):
    if soap == "1.1":
        return "text/xml; charset=utf-8"
    return 'application/soap+xml; charset=utf-8; action="%s"' % action


def nil_placeholder(client):
    """A value of a complex item type that zeep renders as an empty element (every field
    skipped); mark_nils turns those into xsi:nil items afterwards, because zeep 4.3.3 cannot
    take `Nil` as an item of a list of complex values."""
    from zeep import xsd

    def make(type_name):
        t = client.get_type("{https://os.ecgrid.io/}" + cv.local(type_name))
        return t(**{name: xsd.SkipValue for name, _ in t.elements})

    return make


def mark_nils(contract, elem, type_name):
    """Walk a rendered result along the contract's types; empty items of complex array
    types are the placeholders of nil items (a real item always has a required child)."""
    if cv.is_simple(contract, type_name):
        return
    t = contract["complex"][cv.local(type_name)]
    if cv.is_array(contract, type_name):
        item_type = t["fields"][0]["type"]
        for child in elem:
            if len(child) == 0 and not (child.text or "") and not cv.is_simple(contract, item_type):
                assert any(f["min"] == 1 for f in contract["complex"][cv.local(item_type)]["fields"])
                child.set("{%s}nil" % XSI, "true")
            else:
                mark_nils(contract, child, item_type)
        return
    fields = {f["name"]: f for f in t["fields"]}
    for child in elem:
        mark_nils(contract, child, fields[etree.QName(child).localname]["type"])


def render_response(client, contract, op, soap, model):
    """The response envelope for `model`: zeep's serializer for typed results, a hand-built
    ADO.NET DataSet (inline schema + diffgram) for DataSet results."""
    res = op["result"]
    if res["type"] == "dataset":
        return dataset_envelope(contract, op, soap, model)
    b = binding(client, contract, soap)
    value = cv.to_zeep(contract, res["type"], model, nil_placeholder(client))
    message = b._operations[op["name"]].output.serialize(**{res["name"]: value})
    envelope = message.content
    if model is not cv.ABSENT and not cv.is_simple(contract, res["type"]):
        found = envelope.findall(".//{%s}%s" % (contract["namespace"], res["name"]))
        assert len(found) == 1
        mark_nils(contract, found[0], res["type"])
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def dataset_envelope(contract, op, soap, tables):
    env_ns = SOAP11_ENV if soap == "1.1" else SOAP12_ENV
    tns = contract["namespace"]
    envelope = etree.Element("{%s}Envelope" % env_ns, nsmap={"soap": env_ns, "xsi": XSI, "xsd": XS_NS})
    body = etree.SubElement(envelope, "{%s}Body" % env_ns)
    response = etree.SubElement(body, "{%s}%sResponse" % (tns, op["name"]), nsmap={None: tns})
    result = etree.SubElement(response, "{%s}%s" % (tns, op["result"]["name"]))
    schema = etree.SubElement(result, "{%s}schema" % XS_NS, id="NewDataSet",
                              nsmap={None: "", "xs": XS_NS, "msdata": MSDATA})
    root = etree.SubElement(schema, "{%s}element" % XS_NS, name="NewDataSet")
    root.set("{%s}IsDataSet" % MSDATA, "true")
    root.set("{%s}UseCurrentLocale" % MSDATA, "true")
    choice = etree.SubElement(etree.SubElement(root, "{%s}complexType" % XS_NS),
                              "{%s}choice" % XS_NS, minOccurs="0", maxOccurs="unbounded")
    for name, columns, _rows in tables:
        table = etree.SubElement(choice, "{%s}element" % XS_NS, name=name)
        seq = etree.SubElement(etree.SubElement(table, "{%s}complexType" % XS_NS), "{%s}sequence" % XS_NS)
        for column, xs_type in columns:
            etree.SubElement(seq, "{%s}element" % XS_NS, name=column, type=xs_type, minOccurs="0")
    diffgram = etree.SubElement(result, "{%s}diffgram" % DIFFGR, nsmap={"msdata": MSDATA, "diffgr": DIFFGR})
    data = etree.SubElement(diffgram, "NewDataSet", nsmap={None: ""})
    order = 0
    for name, columns, rows in tables:
        for i, row in enumerate(rows):
            r = etree.SubElement(data, name)
            r.set("{%s}id" % DIFFGR, "%s%d" % (name, i + 1))
            r.set("{%s}rowOrder" % MSDATA, str(order))
            order += 1
            for column, _xs_type in columns:
                if column in row:
                    etree.SubElement(r, column).text = row[column]
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


# ---------------------------------------------------------------- request comparison


def canonical(elem):
    """(namespace, local name, attributes, text, children): prefixes and whitespace-only
    text do not count; xmlns declarations are not attributes in lxml."""
    text = elem.text or ""
    if not text.strip():
        text = ""
    return (etree.QName(elem).namespace, etree.QName(elem).localname,
            dict(elem.attrib), text, [canonical(c) for c in elem])


def same_value(type_name, ours, theirs):
    """Text equality, except dateTime, compared per XML Schema's value space (see
    contract_values.datetime_value): a writer may legitimately print one instant as `Z` or
    `+00:00`. Everything else must be the same text."""
    if type_name == cv.XS + "dateTime":
        try:
            return cv.datetime_value(ours) == cv.datetime_value(theirs)
        except ValueError:
            return False
    return ours == theirs


def tree_diff(ours, theirs, types, path="", out=None):
    """Differences between two canonical trees; `types` maps a leaf's local name to its
    XML Schema type for value comparison."""
    out = [] if out is None else out
    ns_a, name_a, attrs_a, text_a, kids_a = ours
    ns_b, name_b, attrs_b, text_b, kids_b = theirs
    here = "%s/{%s}%s" % (path, ns_b, name_b)
    if (ns_a, name_a) != (ns_b, name_b):
        out.append("%s: element {%s}%s instead" % (here, ns_a, name_a))
        return out
    if attrs_a != attrs_b:
        out.append("%s: attributes %r, zeep %r" % (here, attrs_a, attrs_b))
    if not kids_a and not kids_b and not same_value(types.get(name_b, ""), text_a, text_b):
        out.append("%s: text %r, zeep %r" % (here, text_a, text_b))
    names_a = [k[1] for k in kids_a]
    names_b = [k[1] for k in kids_b]
    if names_a != names_b:
        out.append("%s: children %r, zeep %r" % (here, names_a, names_b))
        return out
    for a, b in zip(kids_a, kids_b):
        tree_diff(a, b, types, here, out)
    return out


def media_params(value):
    """A Content-Type as (media type, {param: value}), lower-cased names, unquoted values."""
    parts = [p.strip() for p in value.split(";") if p.strip()]
    params = {}
    for p in parts[1:]:
        key, _, val = p.partition("=")
        params[key.strip().lower()] = val.strip().strip('"')
    if "charset" in params:
        params["charset"] = params["charset"].lower()
    return parts[0].lower(), params


# ---------------------------------------------------------------- result comparison


def result_diff(contract, type_name, model, actual, path, out):
    """Differences between the expected model and the CLI's JSON for it."""
    if model is cv.ABSENT or model is cv.NIL:
        if actual is not None:
            out.append("%s: expected null, got %r" % (path, actual))
        return out
    if type_name.startswith(cv.XS) or cv.local(type_name) in contract["enums"]:
        kind = cv.local(type_name) if type_name.startswith(cv.XS) else "enum"
        if kind == "base64Binary":
            ok = isinstance(actual, str) and _b64(actual) == model
        elif kind == "dateTime":
            ok = isinstance(actual, str) and _dt_eq(actual, model)
        elif kind == "float":
            ok = isinstance(actual, (int, float)) and not isinstance(actual, bool) and \
                struct.unpack("f", struct.pack("f", actual))[0] == model
        elif kind == "boolean":
            ok = actual is model
        elif kind in ("int", "long", "short", "unsignedByte"):
            ok = isinstance(actual, int) and not isinstance(actual, bool) and actual == model
        else:
            ok = actual == model
        if not ok:
            out.append("%s: expected %s %r, got %r" % (path, kind, model, actual))
        return out
    t = contract["complex"][cv.local(type_name)]
    if cv.is_array(contract, type_name):
        if not isinstance(actual, list) or len(actual) != len(model):
            out.append("%s: expected an array of %d, got %r" % (path, len(model), actual))
            return out
        for i, (m, a) in enumerate(zip(model, actual)):
            result_diff(contract, t["fields"][0]["type"], m, a, "%s[%d]" % (path, i), out)
        return out
    if not isinstance(actual, dict):
        out.append("%s: expected an object %s, got %r" % (path, t["name"], actual))
        return out
    names = [f["name"] for f in t["fields"]]
    if set(actual) != set(names):
        out.append("%s: keys missing %r, unexpected %r" % (
            path, sorted(set(names) - set(actual)), sorted(set(actual) - set(names))))
    for f in t["fields"]:
        if f["name"] in actual:
            result_diff(contract, f["type"], model[f["name"]], actual[f["name"]],
                        path + "." + f["name"], out)
    return out


def dataset_diff(tables, actual):
    """The CLI's DataSet JSON against the tables sent. A missing column value may be printed
    as null or left out: the JSON form ({"Table": [{"Column": "text"}]}) does not fix which."""
    if not isinstance(actual, dict):
        return ["expected a DataSet object, got %r" % (actual,)]
    out = []
    expected = cv.dataset_json(tables)
    if set(actual) != set(expected):
        out.append("tables %r, expected %r" % (sorted(actual), sorted(expected)))
        return out
    for name, rows in expected.items():
        got = actual[name]
        if not isinstance(got, list) or len(got) != len(rows):
            out.append("%s: expected %d rows, got %r" % (name, len(rows), got))
            continue
        for i, (want, row) in enumerate(zip(rows, got)):
            present = {k: v for k, v in row.items() if v is not None} if isinstance(row, dict) else row
            if present != want:
                out.append("%s[%d]: expected %r, got %r" % (name, i, want, row))
    return out


def _b64(text):
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


def _dt_eq(a, b):
    try:
        return cv.datetime_value(a) == cv.datetime_value(b)
    except ValueError:
        return False
