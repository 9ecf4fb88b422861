"""What to change when an account fails (ba_route_hint): the same hint from
sendmail, send and check; every configuration line it suggests parses and
works when pasted into the account; a TLS mode that does not match the port
fails in seconds, not at the timeout."""
import re
import subprocess
import time

import pytest

from conftest import bluearrow_path
from servers import RawServer

MSG = (b"From: a@x.test\r\nTo: b@y.test\r\nDate: Sun, 29 Nov 2026 00:00:00 +0000\r\n"
       b"Message-ID: <1@x.test>\r\nSubject: t\r\n\r\nbody\r\n")
EX_UNAVAILABLE, EX_TEMPFAIL, EX_CONFIG = 69, 75, 78


def ba(*args, input=b"", timeout=40):
    return subprocess.run([bluearrow_path()] + [str(a) for a in args], input=input,
                          capture_output=True, timeout=timeout)


def send_mail(cfg):
    return ba("sendmail", "-C", cfg, "-f", "a@x.test", "b@y.test", input=MSG)


def hint_lines(stderr):
    """The lines of the hint on sendmail's stderr (after 'bluearrow: hint: ')."""
    return [l[len("bluearrow: hint: "):] for l in stderr.decode().splitlines()
            if l.startswith("bluearrow: hint: ")]


def config_lines(hints):
    """The suggested configuration lines: indented by two spaces."""
    return [l[2:] for l in hints if l.startswith("  ")]


def with_lines(write_config, srv, lines, name, **keys):
    """A config for srv with keys, then the suggested lines pasted at the end of the account."""
    text = open(write_config(srv, name=name + ".base", **keys)).read()
    head, tail = text.split("account default")
    return write_config(text=head + "".join(l + "\n" for l in lines) + "account default" + tail,
                        name=name)


# ---- certificates ----------------------------------------------------------

def test_pin_hint_parses_and_sends(smtp_server, write_config, tls_certs):
    srv = smtp_server(starttls=True, cert="untrusted")
    cfg = write_config(srv, tls=True, tls_starttls=True)
    r = send_mail(cfg)
    assert r.returncode == EX_UNAVAILABLE, r.stderr
    fp = tls_certs.fingerprint("untrusted")
    pins = [l for l in config_lines(hint_lines(r.stderr)) if l.startswith("tls_fingerprint")]
    assert pins == ["tls_fingerprint " + fp], r.stderr
    # nothing on stderr suggests a form the parser refuses
    assert b"SHA256:" not in r.stderr
    pinned = with_lines(write_config, srv, pins, "pinned", tls=True, tls_starttls=True,
                        tls_trust_file=None)
    r = send_mail(pinned)
    assert r.returncode == 0, r.stderr
    assert srv.wait_txn().data == MSG


def test_fingerprint_error_names_the_whole_value(smtp_server, write_config, tls_certs):
    srv = smtp_server(starttls=True, cert="untrusted")
    value = "SHA256:" + tls_certs.fingerprint("untrusted")
    cfg = write_config(srv, tls=True, tls_starttls=True, tls_fingerprint=value)
    r = send_mail(cfg)
    assert r.returncode == EX_CONFIG, r.stderr
    assert ("'%s'" % value).encode() in r.stderr, r.stderr
    assert b"without a prefix" in r.stderr and b"AB:CD:" in r.stderr


def test_sha1_fingerprint_still_pins(smtp_server, write_config, tls_certs):
    """msmtp takes a SHA-1 fingerprint for compatibility; the parser did, the pin did not."""
    srv = smtp_server(starttls=True, cert="untrusted")
    cfg = write_config(srv, tls=True, tls_starttls=True, tls_trust_file=None,
                       tls_fingerprint=tls_certs.fingerprint("untrusted", algo="sha1"))
    r = send_mail(cfg)
    assert r.returncode == 0, r.stderr
    cfg = write_config(srv, name="other", tls=True, tls_starttls=True, tls_trust_file=None,
                       tls_fingerprint=tls_certs.fingerprint("server", algo="sha1"))
    r = send_mail(cfg)
    assert r.returncode == EX_UNAVAILABLE and b"does not match tls_fingerprint" in r.stderr


def test_name_mismatch_lists_names_and_override(smtp_server, write_config):
    srv = smtp_server(starttls=True, cert="wronghost")
    cfg = write_config(srv, tls=True, tls_starttls=True)
    r = send_mail(cfg)
    assert r.returncode == EX_UNAVAILABLE, r.stderr
    hints = hint_lines(r.stderr)
    assert any("not valid for '127.0.0.1'" in l and "'wrong.example.invalid'" in l
               for l in hints), r.stderr
    lines = config_lines(hints)
    assert "tls_host_override wrong.example.invalid" in lines, r.stderr
    fixed = with_lines(write_config, srv, ["tls_host_override wrong.example.invalid"], "fixed",
                       tls=True, tls_starttls=True)
    r = send_mail(fixed)
    assert r.returncode == 0, r.stderr
    # check gives the same hint
    r = ba("check", "-C", cfg)
    out = r.stdout.decode()
    assert r.returncode == EX_UNAVAILABLE
    assert "hint           tls_host_override wrong.example.invalid" in out, out


def test_unknown_issuer_mentions_trust_file_and_pin(smtp_server, write_config, tls_certs):
    srv = smtp_server(starttls=True, cert="untrusted")
    cfg = write_config(srv, tls=True, tls_starttls=True)
    r = ba("send", "-C", cfg, "--from", "a@x.test", "--to", "b@y.test", "--subject", "s")
    assert r.returncode == EX_UNAVAILABLE, r.stderr
    lines = config_lines(hint_lines(r.stderr))
    trust = [l for l in lines if l.startswith("tls_trust_file ")]
    assert trust and any(l.startswith("tls_fingerprint ") for l in lines), r.stderr
    # the line with the CA's file in place of the placeholder works
    fixed = with_lines(write_config, srv, ["tls_trust_file " + tls_certs.other_ca], "fixed",
                       tls=True, tls_starttls=True, tls_trust_file=None)
    r = send_mail(fixed)
    assert r.returncode == 0, r.stderr


def test_expired_certificate_says_so(smtp_server, write_config):
    srv = smtp_server(starttls=True, cert="expired")
    cfg = write_config(srv, tls=True, tls_starttls=True)
    r = send_mail(cfg)
    assert r.returncode == EX_UNAVAILABLE
    hints = hint_lines(r.stderr)
    assert any("expired on" in l for l in hints), r.stderr
    assert not any("certcheck" in l or l.strip() == "tls off" for l in hints)


def test_every_suggested_line_parses(smtp_server, write_config):
    """All lines of every certificate hint, pasted at once, make a valid account."""
    for cert in ("untrusted", "wronghost", "expired", "notyet"):
        srv = smtp_server(starttls=True, cert=cert)
        cfg = write_config(srv, name=cert, tls=True, tls_starttls=True)
        r = send_mail(cfg)
        lines = config_lines(hint_lines(r.stderr))
        assert lines, (cert, r.stderr)
        pasted = with_lines(write_config, srv, lines, cert + ".pasted", tls=True,
                            tls_starttls=True)
        r = ba("config", "check", "-C", pasted)
        assert r.returncode == 0, (cert, lines, r.stderr)


# ---- TLS mode against the port ---------------------------------------------

@pytest.mark.parametrize("front", ["sendmail", "send"])
def test_starttls_against_implicit_tls_port_fails_fast(smtp_server, write_config, front):
    srv = smtp_server(implicit_tls=True)
    cfg = write_config(srv, tls=True, tls_starttls=True, timeout=15)
    t0 = time.monotonic()
    if front == "sendmail":
        r = send_mail(cfg)
    else:
        r = ba("send", "-C", cfg, "--from", "a@x.test", "--to", "b@y.test", "--subject", "s")
    elapsed = time.monotonic() - t0
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert elapsed < 8, elapsed
    assert b"expects implicit TLS" in r.stderr
    assert "tls_starttls off" in config_lines(hint_lines(r.stderr)), r.stderr
    # the probe's TLS connection carried no SMTP command
    assert all(c.commands == [] for c in srv.conns)
    fixed = with_lines(write_config, srv, ["tls_starttls off"], "fixed", tls=True,
                       tls_starttls=True, timeout=15)
    r = send_mail(fixed)
    assert r.returncode == 0, r.stderr


def test_no_tls_against_implicit_tls_port_suggests_tls_on(smtp_server, write_config, tls_certs):
    srv = smtp_server(implicit_tls=True)
    cfg = write_config(srv, tls=False, timeout=15)
    t0 = time.monotonic()
    r = send_mail(cfg)
    assert time.monotonic() - t0 < 8
    assert r.returncode == EX_TEMPFAIL, r.stderr
    lines = config_lines(hint_lines(r.stderr))
    assert lines == ["tls on", "tls_starttls off"], r.stderr
    # (the test CA stands for the system trust store a real server's certificate is in)
    fixed = with_lines(write_config, srv, lines, "fixed", tls=False, timeout=15,
                       tls_trust_file=tls_certs.ca)
    r = send_mail(fixed)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("front", ["sendmail", "send"])
def test_implicit_tls_against_plain_port_fails_fast(smtp_server, write_config, front):
    srv = smtp_server(starttls=True)
    cfg = write_config(srv, tls=True, tls_starttls=False, timeout=15)
    t0 = time.monotonic()
    if front == "sendmail":
        r = send_mail(cfg)
    else:
        r = ba("send", "-C", cfg, "--from", "a@x.test", "--to", "b@y.test", "--subject", "s")
    assert time.monotonic() - t0 < 8
    assert r.returncode == EX_UNAVAILABLE, r.stderr
    assert b"answered in plain text, not TLS ('220 mx.test" in r.stderr
    assert "tls_starttls on" in config_lines(hint_lines(r.stderr)), r.stderr
    assert all(c.commands == [] for c in srv.conns)
    fixed = with_lines(write_config, srv, ["tls_starttls on"], "fixed", tls=True,
                       tls_starttls=False, timeout=15)
    r = send_mail(fixed)
    assert r.returncode == 0, r.stderr


class SlowGreeting(RawServer):
    """A plain server that greets after 3 s (as a server under load may)."""

    def handle(self, s):
        time.sleep(3)
        super().handle(s)


def test_slow_greeting_still_delivers(write_config, tls_certs):
    srv = SlowGreeting(tls_certs).start()
    try:
        cfg = write_config(srv, timeout=15)
        r = send_mail(cfg)
        assert r.returncode == 0, r.stderr
        assert srv.txns and srv.txns[0].data == MSG
        # the probe connection got a ClientHello and nothing else in clear
        others = [c for c in srv.conns if not c.txns]
        assert all(b"EHLO" not in c.client_bytes() and b"MAIL" not in c.client_bytes()
                   for c in others)
    finally:
        srv.stop()

