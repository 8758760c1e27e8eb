"""All 221 operations against an independent peer (zeep 4.3.3 loaded with our WSDL).

* The WSDL says what the contract says (otherwise the two tests below would prove nothing).
* Requests: for every operation `ecgridos call` sends the same XML as zeep builds from the
  same values (elements, namespaces, order, values) with the same SOAPAction/Content-Type.
* Results: zeep serializes generated result values (a hand-built ADO.NET DataSet for the
  DataSet operations); `ecgridos call` prints exactly those values as JSON.

Run by .ci/run with ECGRIDOS_BIN set; one loopback server for the session, one CLI process
per case.
"""
import json

import pytest
import zeep

import contract_values as cv
import peer as pr

CONTRACT = cv.load_contract()
OPS = CONTRACT["operations"]
OP_IDS = [op["name"] for op in OPS]
SESSION = "0f3c9e5a-interop-session"
OVERRIDE = "explicit-session-from-argument"


@pytest.fixture(scope="session")
def client():
    return zeep.Client(str(pr.WSDL))


@pytest.fixture(scope="session")
def peer():
    server = pr.Peer()
    yield server
    server.close()


# ---------------------------------------------------------------- the WSDL is the contract's

def _shape(element):
    """(name, contract-style type, min, max, nillable) of a zeep element."""
    t = element.type
    if not t.is_global and not element.type.__class__.__module__.endswith("builtins"):
        # The anonymous type of a DataSet result: <s:element ref="s:schema"/><s:any/>.
        parts = [type(x).__name__ for _, seq in t.elements_nested for x in seq]
        type_name = "dataset" if parts == ["Schema", "Any"] else "anonymous %r" % parts
    elif t.qname.namespace == pr.XS_NS:
        type_name = cv.XS + t.qname.localname
    else:
        type_name = cv.TNS + t.qname.localname
    max_occurs = "unbounded" if element.max_occurs == "unbounded" else str(element.max_occurs)
    return (element.name, type_name, element.min_occurs, max_occurs, bool(element.nillable))


def _contract_shape(f):
    return (f["name"], f["type"], f["min"], f["max"], bool(f.get("nillable")))


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_wsdl_describes_the_operation_as_the_contract_does(client, op):
    for soap in ("1.1", "1.2"):
        operation = pr.binding(client, CONTRACT, soap)._operations[op["name"]]
        assert operation.soapaction == op["soap_action"]
        assert operation.input.body.qname.localname == op["name"]
        params = [_shape(e) for _, e in operation.input.body.type.elements]
        assert params == [_contract_shape(p) for p in op["params"]]
        results = [_shape(e) for _, e in operation.output.body.type.elements]
        assert results == [_contract_shape(op["result"])]


def test_wsdl_has_the_contracts_names_types_and_enumerations(client):
    service = client.wsdl.services[CONTRACT["service"]]
    for key in ("soap11", "soap12"):
        port = service.ports[CONTRACT[key]["port"]]
        assert port.binding.name.localname == CONTRACT[key]["binding"]
    tns = "{%s}" % CONTRACT["namespace"]
    for t in CONTRACT["complex_types"]:
        zt = client.get_type(tns + t["name"])
        assert [_shape(e) for _, e in zt.elements] == [_contract_shape(f) for f in t["fields"]], t["name"]
    # zeep keeps no enumeration facets, so these are read from the WSDL's schema directly.
    schema = pr.etree.parse(str(pr.WSDL)).getroot()
    for e in CONTRACT["enumerations"]:
        found = schema.findall(".//{%s}simpleType[@name='%s']" % (pr.XS_NS, e["name"]))
        assert len(found) == 1, e["name"]
        restriction = found[0].find("{%s}restriction" % pr.XS_NS)
        assert restriction.get("base").split(":")[-1] == cv.local(e["base"]), e["name"]
        values = [v.get("value") for v in restriction.findall("{%s}enumeration" % pr.XS_NS)]
        assert values == e["values"], e["name"]


# ---------------------------------------------------------------- requests


def _request_case(tmp_path, op, variant, forced=None):
    """CLI arguments and zeep keyword arguments for the same values."""
    pairs, kwargs, types = [], {}, {}
    for p, value in cv.params(CONTRACT, op, variant, forced):
        types[p["name"]] = p["type"]
        if p["name"] == "SessionID":
            # Filled from --session-id, unless given (the sparse variant gives it).
            if variant == "sparse":
                pairs.append("SessionID=" + OVERRIDE)
                kwargs["SessionID"] = OVERRIDE
            else:
                kwargs["SessionID"] = SESSION
            continue
        if value is cv.ABSENT:
            continue
        if isinstance(value, bytes) and variant == "sparse" and value:
            blob = tmp_path / (p["name"] + ".bin")
            blob.write_bytes(value)
            pairs.append("%s=@%s" % (p["name"], blob))
        else:
            pairs.append("%s=%s" % (p["name"], cv.cli_text(p["type"], value)))
        # zeep gets the Python value: it writes ints, bools and base64 itself; dateTime as
        # text (a Python datetime keeps only 6 of .NET's 7 fractional digits).
        kwargs[p["name"]] = value
    return pairs, kwargs, types


@pytest.mark.parametrize("soap,variant", [("1.1", "rich"), ("1.1", "sparse"), ("1.2", "rich")])
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_request_is_the_xml_zeep_builds(client, peer, tmp_path, op, soap, variant):
    _check_request(client, peer, tmp_path, op, soap, variant)


def _check_request(client, peer, tmp_path, op, soap, variant, forced=None):
    pairs, kwargs, types = _request_case(tmp_path, op, variant, forced)
    envelope, headers = pr.binding(client, CONTRACT, soap)._create(op["name"], (), kwargs, client=client)

    model = cv.result(CONTRACT, op, "rich")
    peer.expect(pr.content_type_for(soap, op["soap_action"]),
                pr.render_response(client, CONTRACT, op, soap, model))
    run = pr.run_call(peer, op["name"], pairs, soap, SESSION, options_first=variant == "sparse")
    assert run.returncode == 0, run.stderr.decode("utf-8", "replace")

    sent = peer.requests()
    assert len(sent) == 1, "expected exactly one request, got %d" % len(sent)
    path, got_headers, body = sent[0]
    got_headers = {k.lower(): v for k, v in got_headers.items()}
    assert path == pr.ASMX_PATH

    want_type, want_params = pr.media_params(headers["Content-Type"])
    got_type, got_params = pr.media_params(got_headers.get("content-type", ""))
    assert (got_type, got_params) == (want_type, want_params)
    if soap == "1.1":
        assert got_headers.get("soapaction") == headers["SOAPAction"]

    ours = pr.etree.fromstring(body)
    env_ns = pr.SOAP11_ENV if soap == "1.1" else pr.SOAP12_ENV
    assert pr.etree.QName(ours).namespace == env_ns
    header = ours.find("{%s}Header" % env_ns)
    assert header is None or len(header) == 0, "unexpected SOAP header content"
    body_ours = ours.find("{%s}Body" % env_ns)
    body_zeep = envelope.find("{%s}Body" % env_ns)
    assert body_ours is not None
    diff = pr.tree_diff(pr.canonical(body_ours), pr.canonical(body_zeep), types)
    assert not diff, "\n".join(diff)


# ---------------------------------------------------------------- results


@pytest.mark.parametrize("soap,variant", [("1.1", "rich"), ("1.1", "sparse"), ("1.2", "sparse")])
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_result_reads_back_the_values_zeep_wrote(client, peer, tmp_path, op, soap, variant):
    _check_result(client, peer, tmp_path, op, soap, variant)


def _check_result(client, peer, tmp_path, op, soap, variant, forced=None):
    pairs, _kwargs, _types = _request_case(tmp_path, op, "rich")
    model = cv.result(CONTRACT, op, variant, forced)
    peer.expect(pr.content_type_for(soap, op["soap_action"]),
                pr.render_response(client, CONTRACT, op, soap, model))
    run = pr.run_call(peer, op["name"], pairs, soap, SESSION)
    assert run.returncode == 0, run.stderr.decode("utf-8", "replace")
    out = run.stdout.decode("utf-8")
    printed = json.loads(out)
    if op["result"]["type"] == "dataset":
        diff = pr.dataset_diff(model, printed)
    else:
        diff = pr.result_diff(CONTRACT, op["result"]["type"], model, printed, op["result"]["name"], [])
    assert not diff, "\n".join(diff)


# ---------------------------------------------------------------- every enumeration value

CARRIERS = cv.enumeration_carriers(CONTRACT)
ENUMS = CONTRACT["enumerations"]


@pytest.mark.parametrize("enum", ENUMS, ids=[e["name"] for e in ENUMS])
def test_every_enumeration_value_both_ways(client, peer, tmp_path, enum):
    """Each value of each enumeration (`_3DES_SHA1`, `None` beside `none`, all 341 APICall
    names) is sent by name where a parameter takes it, and read back where a result holds it."""
    by_param, in_result = CARRIERS[enum["name"]]
    assert by_param or in_result, "no operation uses " + enum["name"]
    for value in enum["values"]:
        forced = {cv.TNS + enum["name"]: value}
        if by_param:
            _check_request(client, peer, tmp_path, by_param, "1.1", "rich", forced)
        if in_result:
            _check_result(client, peer, tmp_path, in_result, "1.1", "rich", forced)


# ---------------------------------------------------------------- the harness itself


def test_generated_values_cover_the_edges():
    """Every edge value reaches some request, and results have 0, 1 and 2 item arrays,
    nil items and left-out fields; otherwise the tests above would prove less than they say."""
    seen = set()
    for op in OPS:
        for variant in ("rich", "sparse"):
            for p, value in cv.params(CONTRACT, op, variant):
                seen.add((p["type"], value if not isinstance(value, bytes) else bytes(value)))
    for kind, values in (("string", cv.STRINGS), ("long", cv.LONGS), ("short", cv.SHORTS),
                         ("dateTime", cv.DATETIMES), ("int", cv.INTS)):
        missing = [v for v in values if (cv.XS + kind, v) not in seen]
        assert not missing, (kind, missing)
    assert (cv.XS + "string", "") in seen

    lengths, nils, absents = set(), 0, 0

    def walk(value):
        nonlocal nils, absents
        if value is cv.NIL:
            nils += 1
        elif value is cv.ABSENT:
            absents += 1
        elif isinstance(value, list):
            lengths.add(len(value))
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)

    for op in OPS:
        if op["result"]["type"] != "dataset":
            for variant in ("rich", "sparse"):
                walk(cv.result(CONTRACT, op, variant))
    assert {0, 1, 2} <= lengths and nils and absents


def test_datetime_value_space():
    assert cv.datetime_value("2001-02-03T04:05:06Z") == cv.datetime_value("2001-02-03T04:05:06.0000000+00:00")
    assert cv.datetime_value("2001-02-03T05:05:06+01:00") == cv.datetime_value("2001-02-03T04:05:06Z")
    assert cv.datetime_value("2001-02-03T04:05:06") != cv.datetime_value("2001-02-03T04:05:06Z")
    assert cv.datetime_value("2026-11-23T21:16:24.1234567") != cv.datetime_value("2026-11-23T21:16:24.123456")


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_zeep_reads_the_responses_the_peer_sends(client, op):
    """The peer's answers are valid for zeep itself (typed results and DataSets alike), so a
    failure of the result test above is the CLI's, not a malformed answer."""
    for soap in ("1.1", "1.2"):
        operation = pr.binding(client, CONTRACT, soap)._operations[op["name"]]
        for variant in ("rich", "sparse"):
            model = cv.result(CONTRACT, op, variant)
            body = pr.render_response(client, CONTRACT, op, soap, model)
            parsed = operation.output.deserialize(pr.etree.fromstring(body))
            if model is cv.ABSENT:
                assert parsed is None
            elif op["result"]["type"] == "dataset":
                rows = parsed["_value_1"]["_value_1"]
                assert len(rows) == sum(len(table[2]) for table in model)
            elif isinstance(model, list):
                # zeep reads an empty top-level array as None, and a nil item of complex
                # type as an object whose fields are all None; the wire is right either way.
                items = parsed or []
                nils = [i is None or all(v is None for v in i.__values__.values())
                        if not isinstance(i, str) else False for i in items]
                assert nils == [m is cv.NIL for m in model]
            elif isinstance(model, dict):
                for name, value in model.items():
                    if value is cv.ABSENT:
                        assert parsed[name] is None, name
            else:
                assert parsed is not None


def test_request_comparison_sees_order_namespace_and_value_but_not_prefixes(client):
    op = next(o for o in OPS if o["name"] == "CertificateAddPublic")
    _pairs, kwargs, types = _request_case(None, op, "rich")
    envelope, _headers = pr.binding(client, CONTRACT, "1.1")._create(op["name"], (), kwargs, client=client)
    body = envelope.find("{%s}Body" % pr.SOAP11_ENV)
    zeep_tree = pr.canonical(body)

    def diff_after(change):
        copy = pr.etree.fromstring(pr.etree.tostring(body))
        change(copy[0])
        return pr.tree_diff(pr.canonical(copy), zeep_tree, types)

    # Other prefixes, and whitespace between elements: the same XML.
    text = pr.etree.tostring(body).decode().replace("ns0:", "x:").replace("xmlns:ns0", "xmlns:x")
    assert not pr.tree_diff(pr.canonical(pr.etree.fromstring(text.replace("><", ">\n  <"))), zeep_tree, types)
    # Two parameters swapped, one in another namespace, one value changed: all seen.
    assert diff_after(lambda req: req.insert(1, req[2]))
    assert diff_after(lambda req: setattr(req[1], "tag", "{urn:other}" + pr.etree.QName(req[1]).localname))
    assert diff_after(lambda req: setattr(req[-1], "text", req[-1].text + "A"))
    stamp = next(e for e in body[0] if types[pr.etree.QName(e).localname] == cv.XS + "dateTime")
    stamp_name = pr.etree.QName(stamp).localname

    def retime(value):
        def change(req):
            req.find("{%s}%s" % (CONTRACT["namespace"], stamp_name)).text = value
        return change

    ticks, zoned = cv.datetime_value(stamp.text)
    assert zoned, "this case wants a dateTime with an offset: %r" % stamp.text
    # The same instant written in UTC is the same value; one tick (100 ns) later is not.
    assert not diff_after(retime(_as_utc(ticks)))
    assert diff_after(retime(_as_utc(ticks + 1)))
    assert diff_after(retime(_as_utc(ticks)[:-1]))  # no zone: another value


def _as_utc(ticks):
    import datetime

    whole = datetime.datetime(1, 1, 1) + datetime.timedelta(microseconds=ticks // 10)
    return whole.strftime("%Y-%m-%dT%H:%M:%S") + ".%07dZ" % (ticks % 10_000_000)
