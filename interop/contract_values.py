"""Deterministic values for every operation of the v4.1 contract, and their three renderings.

The contract (the JSON facts of the service's WSDL) says which parameters and which result each
operation has. From it this module builds, per operation and per variant ("rich": every optional
part present, arrays of two; "sparse": optional parts absent or empty, arrays of none or one,
nil items), a model value and renders it three ways:

* the command-line form of `ecgridos call` (NAME=VALUE text),
* the Python value zeep serializes (so zeep, not this module, writes the XML),
* the JSON the CLI must print for a result.

Nothing here imports or imitates the Rust code: the only inputs are the contract and zeep.
"""
import base64
import json
import os
import pathlib
import re
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
XS = "s:"
TNS = "tns:"

ABSENT = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()
NIL = type("NilItem", (), {"__repr__": lambda self: "NIL"})()


def contract_path():
    """The repository's copy of the contract first; the team's shared reference until it lands."""
    candidates = []
    if os.environ.get("ECGRIDOS_CONTRACT"):
        candidates.append(pathlib.Path(os.environ["ECGRIDOS_CONTRACT"]))
    candidates.append(ROOT / "contract" / "ecgridos-v4.1-contract.json")
    candidates.append(ROOT.parent.parent / "shared" / "reference" / "ecgridos-v4.1-contract.json")
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError("ecgridos-v4.1-contract.json not found in " + ", ".join(map(str, candidates)))


def load_contract():
    """The contract with lookup tables for its types."""
    with open(contract_path(), encoding="utf-8") as f:
        contract = json.load(f)
    contract["complex"] = {t["name"]: t for t in contract["complex_types"]}
    contract["enums"] = {e["name"]: e for e in contract["enumerations"]}
    return contract


# Edge values, visited in rotation so that every one of them reaches the wire somewhere.
STRINGS = [
    "Zoë & Ålborg <EDI> ✓",
    "a<b&c>d \"double\" 'single' ]]>",
    "日本語のテキスト",
    "plain-ascii_123",
    "  leading and trailing  ",
    "line one\nline two",
    "emoji 🚚 astral plane",
]
INTS = [2147483647, -2147483648, 0, -1, 424242, 1]
LONGS = [9007199254740993, -9223372036854775808, 9223372036854775807, 0, -9007199254740993]
SHORTS = [-32768, 32767, -1, 0, 1234]
UBYTES = [255, 0, 1, 128]
# Exactly representable as f32, so that the value read back can be compared exactly.
FLOATS = [-5.5, 3.25, 0.0, 12.75, -0.125]
DATETIMES = [
    "2026-11-23T21:16:24.1234567",
    "2026-11-23T21:16:24.1234567+05:30",
    "2001-02-03T04:05:06Z",
    "0001-01-01T00:00:00",
    "2024-02-29T23:59:59.9999999-08:00",
    "2026-01-02T03:04:05.5",
    "1999-12-31T23:59:59.0000001Z",
]
BLOBS = [
    bytes(range(256)),
    "ISA*00*Ünïcode~".encode("utf-8"),
    b"\x00\xff\x00\xff",
    b"x",
]


class Rotation:
    """A deterministic cursor over the edge lists, started at a point fixed by a name."""

    def __init__(self, name, variant):
        self.n = zlib.crc32(f"{name}/{variant}".encode("utf-8"))

    def pick(self, seq):
        self.n += 1
        return seq[self.n % len(seq)]

    def tick(self, period):
        self.n += 1
        return self.n % period


def enumeration_carriers(contract):
    """For each enumeration: an operation that takes it as a parameter (or None), and one
    whose rich result holds it (or None), the first in contract order."""
    out = {e["name"]: [None, None] for e in contract["enumerations"]}
    for op in contract["operations"]:
        for p in op["params"]:
            if p["type"].startswith(TNS) and out[local(p["type"])][0] is None:
                out[local(p["type"])][0] = op
        if op["result"]["type"] != "dataset":
            builder = ResultBuilder(contract, op["name"], "rich")
            builder.value(op["result"]["type"])
            for name in builder.enums_seen:
                if out[name][1] is None:
                    out[name][1] = op
    return out


def local(type_name):
    return type_name.split(":", 1)[1]


def is_array(contract, type_name):
    """`ArrayOf*`: a complex type whose only field repeats."""
    t = contract["complex"].get(local(type_name)) if type_name.startswith(TNS) else None
    return t is not None and len(t["fields"]) == 1 and t["fields"][0]["max"] == "unbounded"


def scalar(contract, type_name, rot):
    """A model value for a simple type or an enumeration."""
    if type_name.startswith(TNS):
        return rot.pick(contract["enums"][local(type_name)]["values"])
    kind = local(type_name)
    table = {
        "string": STRINGS,
        "int": INTS,
        "long": LONGS,
        "short": SHORTS,
        "unsignedByte": UBYTES,
        "float": FLOATS,
        "boolean": [True, False],
        "dateTime": DATETIMES,
        "base64Binary": BLOBS,
    }
    if kind not in table:
        raise ValueError("no values for type " + type_name)
    return rot.pick(table[kind])


def is_simple(contract, type_name):
    return type_name.startswith(XS) or local(type_name) in contract["enums"]


# ---------------------------------------------------------------- parameters (request side)


def params(contract, op, variant, forced=None):
    """[(param, model value or ABSENT)] for an operation, in contract order.

    rich: every parameter given. sparse: optional parameters alternately left out and given
    empty (strings) or left out (others); required ones get other edge values. `forced` maps
    enumeration types (`tns:Name`) to the value their parameters take.
    """
    rot = Rotation(op["name"], variant)
    out = []
    for p in op["params"]:
        if forced and p["type"] in forced:
            out.append((p, forced[p["type"]]))
            continue
        if variant == "sparse" and p["min"] == 0 and p["name"] != "SessionID":
            choice = rot.tick(3)
            if choice == 0:
                out.append((p, ABSENT))
                continue
            if choice == 1 and p["type"] == XS + "string":
                out.append((p, ""))
                continue
            if choice == 1 and p["type"] == XS + "base64Binary":
                out.append((p, b""))
                continue
        out.append((p, scalar(contract, p["type"], rot)))
    return out


def cli_text(type_name, value):
    """A parameter value as `ecgridos call` takes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float):
        return repr(value)
    return str(value)


# ---------------------------------------------------------------- results (response side)


class ResultBuilder:
    """Model values for result types, recursively, cutting type cycles at their second visit."""

    def __init__(self, contract, name, variant, forced=None):
        self.contract = contract
        self.variant = variant
        self.rot = Rotation(name, variant)
        self.forced = forced or {}
        self.enums_seen = set()

    def value(self, type_name, path=()):
        if is_simple(self.contract, type_name):
            picked = scalar(self.contract, type_name, self.rot)
            if type_name.startswith(TNS):
                self.enums_seen.add(local(type_name))
            return self.forced.get(type_name, picked)
        t = self.contract["complex"][local(type_name)]
        if is_array(self.contract, type_name):
            item = t["fields"][0]
            if self.variant == "rich":
                count = 2
            else:
                count = self.rot.tick(2)  # 0 or 1
            items = []
            for i in range(count):
                if self.variant == "sparse" and item.get("nillable") and self.rot.tick(2) == 0:
                    items.append(NIL)
                else:
                    items.append(self.value(item["type"], path + (t["name"],)))
            return items
        return self.complex(t, path + (t["name"],))

    def complex(self, t, path):
        out = {}
        for f in t["fields"]:
            ftype = f["type"]
            optional = f["min"] == 0
            inner = None if is_simple(self.contract, ftype) else local(ftype)
            if inner is not None and is_array(self.contract, ftype):
                inner = local(self.contract["complex"][inner]["fields"][0]["type"])
            cyclic = inner is not None and (inner in path or len(path) > 6)
            if optional and cyclic:
                out[f["name"]] = ABSENT
                continue
            if optional and self.variant == "sparse":
                choice = self.rot.tick(3)
                if choice == 0:
                    out[f["name"]] = ABSENT
                    continue
                if choice == 1 and ftype == XS + "string":
                    out[f["name"]] = ""
                    continue
            out[f["name"]] = self.value(ftype, path)
        return out


def result(contract, op, variant, forced=None):
    """The model result of an operation (ABSENT for a left-out optional result); `forced`
    maps enumeration types (`tns:Name`) to the value every occurrence takes."""
    res = op["result"]
    if res["type"] == "dataset":
        return dataset(op["name"], variant)
    builder = ResultBuilder(contract, op["name"], variant, forced)
    if variant == "sparse" and res["min"] == 0 and res["type"] == XS + "string":
        return ABSENT
    return builder.value(res["type"])


def to_zeep(contract, type_name, value, placeholder):
    """The model as zeep's serializer takes it. Nil items of complex type become
    `placeholder(type)` (see responses.render_result), simple ones zeep's Nil."""
    from zeep import xsd

    if value is ABSENT:
        return None
    if is_simple(contract, type_name):
        return value
    t = contract["complex"][local(type_name)]
    if is_array(contract, type_name):
        item = t["fields"][0]
        items = []
        for v in value:
            if v is NIL:
                items.append(xsd.Nil if is_simple(contract, item["type"]) else placeholder(item["type"]))
            else:
                items.append(to_zeep(contract, item["type"], v, placeholder))
        return {item["name"]: items}
    return {f["name"]: to_zeep(contract, f["type"], value[f["name"]], placeholder) for f in t["fields"]}


# ---------------------------------------------------------------- DataSets


def dataset(name, variant):
    """An ADO.NET DataSet: tables of typed columns, rows of values as the diffgram writes them.

    Each table: (name, [(column, xs type)], [row dict column -> text; a missing key is a
    missing (DBNull) value]).
    """
    rot = Rotation(name, variant)
    tables = [
        (
            "Table",
            [("NetworkID", "xs:int"), ("Name", "xs:string"), ("Count", "xs:long"),
             ("Created", "xs:dateTime"), ("Active", "xs:boolean")],
            [
                {"NetworkID": str(rot.pick(INTS)), "Name": rot.pick(STRINGS),
                 "Count": str(rot.pick(LONGS)), "Created": "2026-11-23T21:16:24.123+01:00",
                 "Active": "true"},
                # No Name: a missing column value.
                {"NetworkID": "7", "Count": "0", "Created": "0001-01-01T00:00:00", "Active": "false"},
            ],
        )
    ]
    if variant == "rich":
        tables.append(("Totals", [("Month", "xs:string"), ("Bytes", "xs:long")],
                       [{"Month": "2026-11", "Bytes": "9007199254740993"}]))
    return tables


def dataset_json(tables):
    """The CLI's JSON for a DataSet: {"Table": [{"Column": "text", ...}, ...], ...}."""
    return {name: [dict(row) for row in rows] for name, _columns, rows in tables}


# ---------------------------------------------------------------- comparison helpers

_DT = re.compile(
    r"^(-?\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,7}))?(Z|[+-]\d\d:\d\d)?$"
)


def datetime_value(text):
    """A dateTime in XML Schema's value space at .NET's resolution (100 ns ticks):
    (ticks, has_zone). Values with a zone compare as instants (UTC), values without one as
    they are; `Z` and `+00:00` are the same value, a value with no zone differs from both.
    """
    import datetime

    m = _DT.match(text.strip())
    if not m:
        raise ValueError("not an xs:dateTime: %r" % text)
    y, mo, d, h, mi, s, frac, zone = m.groups()
    base = datetime.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
    ticks = (base - datetime.datetime(1, 1, 1)) // datetime.timedelta(microseconds=1) * 10
    ticks += int((frac or "").ljust(7, "0"))
    if zone is None:
        return ticks, False
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        minutes = int(zone[1:3]) * 60 + int(zone[4:6])
        ticks -= sign * minutes * 60 * 10_000_000
    return ticks, True
