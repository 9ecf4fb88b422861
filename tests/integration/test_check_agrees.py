"""`bluearrow check` and `bluearrow sendmail` reach an account's server through
the same core path (one mapping from an account to engine parameters): on
every account below they agree on success or on the exit code of the
failure, and check never claims "auth ok" where a send would fail."""
import subprocess

import pytest

from conftest import bluearrow_path


def ba(*args, input=None, timeout=40):
    return subprocess.run([bluearrow_path()] + [str(a) for a in args], input=input,
                          capture_output=True, timeout=timeout)


MSG = b"From: a@example.test\nTo: b@example.test\nSubject: agree\n\nbody\n"

# (id, server options, account keys, expected exit code of both)
ACCOUNTS = [
    ("plain-ok", {}, {}, 0),
    ("starttls-auth-ok", dict(starttls=True, auth=["PLAIN"], auth_require_tls=True),
     dict(tls=True, tls_starttls=True, auth="plain", user="user", password="password"), 0),
    ("scram-plus-channel-binding", dict(starttls=True, auth=["SCRAM-SHA-256-PLUS"],
                                        auth_require_tls=True),
     dict(tls=True, tls_starttls=True, auth="scram-sha-256-plus", user="user",
          password="password"), 0),
    ("auth-without-user", dict(starttls=True, auth=["PLAIN"], auth_require_tls=True),
     dict(tls=True, tls_starttls=True, auth="on", password="password"), 78),
    ("auth-without-password", dict(starttls=True, auth=["PLAIN"], auth_require_tls=True),
     dict(tls=True, tls_starttls=True, auth="plain", user="user"), 78),
    ("wrong-password", dict(starttls=True, auth=["PLAIN"], auth_require_tls=True),
     dict(tls=True, tls_starttls=True, auth="plain", user="user", password="nope"), 77),
    ("no-common-mechanism", dict(starttls=True, auth=["CRAM-MD5"], auth_require_tls=True),
     dict(tls=True, tls_starttls=True, auth="scram-sha-256", user="user",
          password="password"), 77),
    ("untrusted-certificate", dict(starttls=True, cert="untrusted"),
     dict(tls=True, tls_starttls=True), 69),
    ("starttls-not-offered", {}, dict(tls=True, tls_starttls=True), 69),
]


@pytest.mark.parametrize("name,srv_opts,keys,code", ACCOUNTS, ids=[a[0] for a in ACCOUNTS])
def test_check_and_sendmail_agree(name, srv_opts, keys, code, smtp_server, write_config):
    srv = smtp_server(**srv_opts)
    cfg = write_config(srv, from_="a@example.test", **keys)
    c = ba("check", "-C", cfg)
    s = ba("sendmail", "-C", cfg, "b@example.test", input=MSG)
    out = c.stdout.decode() + c.stderr.decode()
    assert (c.returncode, s.returncode) == (code, code), (out, s.stderr.decode())
    if code:
        assert "auth         ok" not in out and "result       ok" not in out
    else:
        assert "result       ok, no message sent" in out
        assert len(srv.txns) == 1  # only the send delivered


def test_check_names_the_missing_user(smtp_server, write_config):
    srv = smtp_server(starttls=True, auth=["PLAIN"], auth_require_tls=True)
    cfg = write_config(srv, tls=True, tls_starttls=True, auth="on", password="password")
    c = ba("check", "-C", cfg)
    assert c.returncode == 78
    assert "auth is on but user is not set" in c.stdout.decode()
    assert srv.conns == []  # refused before connecting, as a send is
