"""bluearrow send (compose's options + submission) and bluearrow check (connect,
TLS, capabilities, AUTH test, hints that say what to change)."""
import email
import email.policy
import subprocess

import pytest

from conftest import bluearrow_path


def ba(*args, timeout=40):
    return subprocess.run([bluearrow_path()] + [str(a) for a in args], capture_output=True,
                          timeout=timeout)


def test_send_builds_and_submits(smtp_server, write_config, tmp_path):
    srv = smtp_server(starttls=True, auth=["PLAIN"], auth_require_tls=True)
    cfg = write_config(srv, tls=True, tls_starttls=True, auth="plain", user="user",
                       password="password", from_="me@example.test")
    att = tmp_path / "data.bin"
    att.write_bytes(bytes(range(256)) * 10)
    body = tmp_path / "body.txt"
    body.write_text("Hello,\n.\nbye\n")
    r = ba("send", "-C", cfg, "--from", "Me <me@example.test>", "--to", "you@example.test",
           "--bcc", "hidden@example.test", "--subject", "Grüße", "--body", body,
           "--attach", att)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"" and r.stderr == b""
    txn = srv.wait_txn()
    assert txn.mail_from == "me@example.test" and txn.tls and txn.authenticated
    assert txn.accepted_rcpts == ["you@example.test", "hidden@example.test"]
    assert b"hidden@" not in txn.data
    m = email.message_from_bytes(txn.data, policy=email.policy.default)
    assert m["Subject"] == "Grüße"
    assert [p.get_payload(decode=True) for p in m.iter_attachments()] == [bytes(range(256)) * 10]
    assert m.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Hello,\n.\nbye\n"


def test_send_usage_errors_are_compose_errors(write_config, smtp_server):
    srv = smtp_server()
    cfg = write_config(srv, from_="me@example.test")
    r = ba("send", "-C", cfg, "--from", "me@example.test")
    assert r.returncode == 64 and b"--to" in r.stderr
    r = ba("send", "-C", cfg, "--from", "me@example.test", "--to", "x@example.test",
           "--subject", "a\r\nBcc: evil@example.test")
    assert r.returncode == 65
    assert srv.conns == []


def test_check_ok_with_starttls_and_auth(smtp_server, write_config, tls_certs):
    srv = smtp_server(starttls=True, auth=["PLAIN", "SCRAM-SHA-256"], auth_require_tls=True)
    cfg = write_config(srv, tls=True, tls_starttls=True, auth="on", user="user",
                       password="password")
    r = ba("check", "-C", cfg)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert tls_certs.fingerprint("server") in out
    assert "verified   yes" in out and "STARTTLS" in out
    assert "auth         ok: user with SCRAM-SHA-256" in out
    assert srv.txns == []  # nothing sent


def test_check_implicit_tls_against_plain_port(smtp_server, write_config):
    srv = smtp_server(starttls=True)
    cfg = write_config(srv, tls=True, tls_starttls=False)
    r = ba("check", "-C", cfg)
    out = r.stdout.decode()
    assert r.returncode != 0
    assert "speaks plain SMTP" in out and "tls_starttls on" in out


def test_check_starttls_against_implicit_tls_port(smtp_server, write_config):
    srv = smtp_server(implicit_tls=True)
    cfg = write_config(srv, tls=True, tls_starttls=True, timeout=3)
    r = ba("check", "-C", cfg)
    out = r.stdout.decode()
    assert r.returncode != 0
    assert "expects implicit TLS" in out and "tls_starttls off" in out


def test_check_no_common_mechanism(smtp_server, write_config):
    srv = smtp_server(starttls=True, auth=["CRAM-MD5"], auth_require_tls=True)
    cfg = write_config(srv, tls=True, tls_starttls=True, auth="scram-sha-256", user="user",
                       password="password")
    r = ba("check", "-C", cfg)
    out = r.stdout.decode()
    assert r.returncode == 77, out
    assert "server offers CRAM-MD5" in out and "SCRAM-SHA-256" in out


def test_check_certificate_problem_shows_pin(smtp_server, write_config, tls_certs):
    srv = smtp_server(starttls=True, cert="untrusted")
    cfg = write_config(srv, tls=True, tls_starttls=True)
    r = ba("check", "-C", cfg)
    out = r.stdout.decode()
    assert r.returncode == 69, out
    fp = tls_certs.fingerprint("untrusted")
    assert "tls_fingerprint " + fp in out
    # the suggested line works
    cfg2 = write_config(srv, name="pinned", tls=True, tls_starttls=True, tls_fingerprint=fp,
                        tls_trust_file=None)
    r = ba("check", "-C", cfg2)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


@pytest.mark.parametrize("sub", ["send", "check"])
def test_help(sub):
    r = ba(sub, "--help")
    assert r.returncode == 0 and sub.encode() in r.stdout
