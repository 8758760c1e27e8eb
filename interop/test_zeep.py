"""Interop: zeep, a SOAP client nobody here wrote, against the WSDL and the fake.

Run by .ci/run: `pytest interop/` with ECGRIDOS_BIN pointing at the built binary.
"""
import json
import signal
import subprocess

import pytest
import zeep
from zeep.exceptions import Fault

import contract_values
from peer import BIN, WSDL

CONTRACT = contract_values.load_contract()


@pytest.fixture(scope="module")
def fake():
    proc = subprocess.Popen(
        [BIN, "serve-mock", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        ready = json.loads(proc.stdout.readline())
        yield ready
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def service(fake, soap="soap11"):
    """A zeep service for the fake, on the binding the contract names (programs generated
    from the real WSDL look bindings up by name)."""
    client = zeep.Client(str(WSDL))
    binding = "{%s}%s" % (CONTRACT["namespace"], CONTRACT[soap]["binding"])
    return client, client.create_service(binding, fake["soap_url"])


def user(fake, login):
    return next(u for u in fake["users"] if u["login"] == login)


@pytest.mark.parametrize("soap", ["soap11", "soap12"])
def test_login_rotate_and_old_key_faults(fake, soap):
    client, svc = service(fake, soap)
    admin = user(fake, "admin")
    bob = user(fake, "bob")
    session = svc.Login(LoginName=admin["login"], Password=admin["password"])
    assert session

    old = svc.UserGetAPIKey(SessionID=session, UserID=bob["user_id"])
    new = svc.GenerateAPIKey(SessionID=session, UserID=bob["user_id"])
    assert new and new != old

    # The old key is dead at once: zeep sees a SOAP fault.
    with pytest.raises(Fault) as err:
        svc.WhoAmI(SessionID=old)
    assert "not valid" in err.value.message
    detail = err.value.detail
    assert detail is not None and detail.findtext("ECGridOSSOAPErrorCode") == "Authentication"

    me = svc.WhoAmI(SessionID=new)
    assert me.UserID == bob["user_id"]
    assert me.LoginName == "bob"
    assert me.AuthLevel == "MailboxUser"
    # LogoutResult is an s:int in the contract.
    logout = svc.Logout(SessionID=session)
    assert isinstance(logout, int) and not isinstance(logout, bool)


def test_api_key_as_session_id_and_version(fake):
    _, svc = service(fake)
    alice = user(fake, "alice")
    current = svc.UserGetAPIKey(SessionID=alice["api_key"], UserID=alice["user_id"])
    rotated = svc.GenerateAPIKey(SessionID=current, UserID=alice["user_id"])
    with pytest.raises(Fault):
        svc.GenerateAPIKey(SessionID=current, UserID=alice["user_id"])
    assert svc.UserGetAPIKey(SessionID=rotated, UserID=alice["user_id"]) == rotated
    assert svc.Version() == "4.1"


def test_wsdl_served_by_the_fake_loads_too(fake):
    client = zeep.Client(fake["soap_url"] + "?WSDL")
    assert client.service.Version() == "4.1"
