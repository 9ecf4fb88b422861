"""The end-to-end scenarios (e2e_cases.py) driven by `bluearrow sendmail`
against a private Dovecot (submission with STARTTLS+AUTH, LMTP into Maildirs).
Exit statuses are the documented ones (bluearrow-sendmail(8)): a recipient
refused permanently is 67 (EX_NOUSER), failed authentication 77 (EX_NOPERM)."""
import pytest

from conftest import BLUEARROW, Client, bluearrow_path, bluearrow_sendmail_works
from e2e_cases import *  # noqa: F401,F403  (the shared test functions)
from e2e_cases import lmtp_cfg, message, read, relayed, split_prepended, submission_cfg

if not bluearrow_sendmail_works():
    pytest.skip("'%s sendmail --help' fails: not built yet" % bluearrow_path(),
                allow_module_level=True)


@pytest.fixture
def client():
    # -i: the cases carry lone "." lines, which end sendmail input without it (issue 4)
    return Client(BLUEARROW.name, [bluearrow_path(), "sendmail", "-i"], BLUEARROW.exit)


def test_lmtp_refused_partial_delivery(client, dovecot, tls_certs, tmp_path):
    """partial_delivery on: the accepted recipient gets the message, the refused
    one is reported with Dovecot's reply, and the submission succeeds (exit 0,
    bluearrowrc(5) partial_delivery)."""
    msg, mid = message("partial")
    before = dovecot.deliveries("user")
    cfg = lmtp_cfg(tmp_path, dovecot, tls_certs, partial_delivery=True)
    r = client.run("-C", cfg, "-f", "a@x.test", "user@mx.test", "nosuchuser@mx.test",
                   input=msg)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert b"nosuchuser@mx.test" in r.stderr and b"550" in r.stderr, r.stderr
    got = read(dovecot.wait_delivery("user", before))
    assert split_prepended(got, msg) == ["Return-Path", "Delivered-To", "Received"]


@pytest.mark.parametrize("mech", ["plain", "login"])
def test_verbose_redacts_credentials(client, dovecot, relay_sink, tls_certs, tmp_path, mech):
    """-v shows the dialogue with Dovecot but neither the password nor its
    base64 forms (AUTH PLAIN's "\\0user\\0password", LOGIN's "password")."""
    import base64
    msg, mid = message("verbose " + mech)
    cfg = submission_cfg(tmp_path, dovecot, tls_certs, auth=mech)
    r = client.run("-v", "-C", cfg, "-f", "a@x.test", "b@y.test", input=msg)
    assert r.returncode == 0, r.stderr
    assert b"STARTTLS" in r.stderr and b"AUTH" in r.stderr, r.stderr
    secrets = [b"password", base64.b64encode(b"password"),
               base64.b64encode(b"\0user\0password")]
    for s in secrets:
        assert s not in r.stderr and s not in r.stdout, (s, r.stderr)
    assert split_prepended(relayed(relay_sink, mid).data, msg) == ["Received"]
