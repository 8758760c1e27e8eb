"""Interop: zeep talks to the fake through `ecgridos record`, the recording proxy.

The recording holds every call zeep made, and none of the credentials it sent or
received, in any form (as sent, base64, URL-encoded).
"""
import base64
import json
import signal
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

import pytest
import zeep
from zeep.exceptions import Fault

import contract_values
from peer import BIN, WSDL

CONTRACT = contract_values.load_contract()


def start(args):
    proc = subprocess.Popen(
        [BIN, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    return proc, json.loads(proc.stdout.readline())


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


@pytest.fixture()
def recorded():
    """The fake, and `ecgridos record` in front of it writing into a fresh file."""
    fake, ready = start(["serve-mock", "--listen", "127.0.0.1:0"])
    out = Path(tempfile.mkdtemp()) / "zeep.jsonl"
    try:
        proxy, proxy_ready = start(
            ["record", "--upstream", ready["soap_url"], "--out", str(out)]
        )
        try:
            yield ready, proxy_ready, proxy, out
        finally:
            if proxy.poll() is None:
                stop(proxy)
    finally:
        stop(fake)


def forms(secret):
    return [
        secret,
        base64.b64encode(secret.encode()).decode(),
        urllib.parse.quote(secret, safe=""),
    ]


@pytest.mark.parametrize("soap", ["soap11", "soap12"])
def test_zeep_through_the_recording_proxy(recorded, soap):
    ready, proxy_ready, proxy, out = recorded
    client = zeep.Client(str(WSDL))
    binding = "{%s}%s" % (CONTRACT["namespace"], CONTRACT[soap]["binding"])
    svc = client.create_service(binding, proxy_ready["soap_url"])
    admin = next(u for u in ready["users"] if u["login"] == "admin")
    alice = next(u for u in ready["users"] if u["login"] == "alice")

    version = svc.Version()
    session = svc.Login(LoginName=admin["login"], Password=admin["password"])
    me = svc.WhoAmI(SessionID=session)
    assert me.LoginName == "admin"
    key = svc.UserGetAPIKey(SessionID=session, UserID=alice["user_id"])
    with pytest.raises(Fault):
        svc.WhoAmI(SessionID="not-a-session-0000")
    svc.Logout(SessionID=session)
    stop(proxy)

    text = out.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["operation"] for r in records] == [
        "Version", "Login", "WhoAmI", "UserGetAPIKey", "WhoAmI", "Logout",
    ]
    assert all(r["outcome"] == "complete" for r in records)
    assert {r["protocol"] for r in records} == {"1.1" if soap == "soap11" else "1.2"}
    assert records[0]["result"] == version
    assert records[3]["parameters"]["UserID"] == alice["user_id"]
    assert records[4]["fault"]["category"] == "Authentication"
    # One session, one fingerprint, from Login's answer to Logout.
    fingerprint = records[1]["result"]
    assert fingerprint.startswith("<secret:")
    assert records[2]["parameters"]["SessionID"] == fingerprint
    assert records[5]["parameters"]["SessionID"] == fingerprint
    for secret in [admin["password"], session, key, alice["api_key"], "not-a-session-0000"]:
        for form in forms(secret):
            assert form not in text, "a secret leaked into the recording"
