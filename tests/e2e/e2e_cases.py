"""End-to-end scenarios against a private Dovecot, shared by every client.

A test module imports these (`from e2e_cases import *`) and defines the
fixture `client` (a conftest.Client): test_e2e_msmtp.py runs them with msmtp
to prove the infrastructure, test_e2e_bluearrow.py with bluearrow sendmail.

Paths checked:
  client --STARTTLS+AUTH--> Dovecot submission --SMTP--> recording relay sink
  client --LMTP (TCP or unix socket)--> Dovecot LMTP --> Maildir file
Every delivered message is compared byte for byte with what was sent (Maildir
files have LF line ends; Dovecot LMTP puts exactly Return-Path, Delivered-To
and Received in front, which is asserted too).
"""
import re
import time
import uuid

import pytest

from conftest import render_config
from mta import split_prepended

LMTP_PREPENDED = ["Return-Path", "Delivered-To", "Received"]


def message(subject="e2e", body=b"Hello.\r\n", extra=b""):
    """A message with Date and Message-ID (so no client adds anything) and a
    unique Message-ID; returns (bytes, message_id)."""
    mid = "<%s@x.test>" % uuid.uuid4().hex
    head = (b"From: Alice <a@x.test>\r\nTo: user@mx.test\r\n"
            b"Date: Sun, 29 Nov 2026 00:00:00 +0000\r\n"
            b"Message-ID: " + mid.encode() + b"\r\nSubject: " + subject.encode() + b"\r\n"
            + extra)
    return head + b"\r\n" + body, mid


def write_cfg(tmp_path, text):
    p = tmp_path / "msmtprc"
    p.write_text(text)
    p.chmod(0o600)
    return str(p)


def submission_cfg(tmp_path, dovecot, certs, **keys):
    vals = dict(host="127.0.0.1", port=dovecot.submission_port, tls=True, tls_starttls=True,
                auth="plain", user="user", password="password", from_="a@x.test")
    vals.update(keys)
    vals = {k.rstrip("_"): v for k, v in vals.items()}
    return write_cfg(tmp_path, render_config(None, certs, **vals))


def lmtp_cfg(tmp_path, dovecot, certs, unix=False, **keys):
    vals = dict(host="127.0.0.1", port=dovecot.lmtp_port, protocol="lmtp", from_="a@x.test")
    if unix:
        vals["socket"] = dovecot.lmtp_socket
    vals.update(keys)
    vals = {k.rstrip("_"): v for k, v in vals.items()}
    return write_cfg(tmp_path, render_config(None, certs, **vals))


def relayed(sink, mid, timeout=10):
    """The transaction the relay sink got for the message with Message-ID mid."""
    end = time.monotonic() + timeout
    needle = b"Message-ID: " + mid.encode()
    while time.monotonic() < end:
        for t in sink.messages:
            if needle in t.data:
                return t
        time.sleep(0.02)
    raise AssertionError("message %s was not relayed; sink transcript:\n%s"
                         % (mid, sink.transcript()[-3000:]))


def login_lines(dovecot, user):
    return [l for l in dovecot.log().splitlines()
            if "submission-login: Info: Login: user=<%s>" % user in l]


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------- submission

@pytest.mark.parametrize("mech,user,password", [
    ("plain", "user", "password"),
    ("login", "user", "password"),
    ("scram-sha-256", "scram", "secret"),   # only a stored SCRAM-SHA-256 hash on the server
    ("on", "user", "password"),             # the client picks: the strongest offered
])
def test_submission_starttls_auth(client, dovecot, relay_sink, tls_certs, tmp_path,
                                  mech, user, password):
    msg, mid = message("submission " + mech)
    before = len(login_lines(dovecot, user))
    cfg = submission_cfg(tmp_path, dovecot, tls_certs, auth=mech, user=user, password=password)
    r = client.run("-C", cfg, "-f", "a@x.test", "b@y.test", "c@y.test", input=msg)
    assert r.returncode == 0, r.stderr.decode(errors="replace") + dovecot.log()[-2000:]
    t = relayed(relay_sink, mid)
    # Dovecot relays the message unchanged after its own Received field
    assert split_prepended(t.data, msg) == ["Received"]
    assert b"by mx.test with ESMTPSA" in t.data.split(b"\r\n\r\n")[0]   # TLS + AUTH
    assert t.mail_from == "a@x.test"
    assert t.accepted_rcpts == ["b@y.test", "c@y.test"]
    logins = login_lines(dovecot, user)[before:]
    assert len(logins) == 1, dovecot.log()[-2000:]
    want = mech.upper()
    if mech == "on":   # msmtp takes PLAIN once TLS is up; bluearrow the strongest
        want = "PLAIN" if "auto-plain" in client.quirks else "SCRAM-SHA-256"
    assert "method=%s," % want in logins[0] and ", TLS," in logins[0], logins[0]


def test_submission_wrong_password(client, dovecot, relay_sink, tls_certs, tmp_path):
    msg, mid = message("wrong password")
    cfg = submission_cfg(tmp_path, dovecot, tls_certs, password="not-the-password")
    r = client.run("-C", cfg, "-f", "a@x.test", "b@y.test", input=msg)
    assert r.returncode == client.exit["auth"], r.stderr
    time.sleep(0.2)
    assert not any(mid.encode() in t.data for t in relay_sink.messages)


def test_submission_body_edge_cases(client, dovecot, relay_sink, tls_certs, tmp_path):
    # lone dots, dot-leading lines, 8-bit text, a 998-octet line, 300 KB in all
    body = (b".\r\n..\r\n.leading dot\r\nGr\xc3\xbc\xc3\x9fe \xe2\x82\xac\r\n" + b"x" * 998
            + b"\r\n" + b"line of text for volume\r\n" * 12000 + b".\r\nend\r\n")
    msg, mid = message("edge", body, extra=b"MIME-Version: 1.0\r\n"
                       b"Content-Type: text/plain; charset=utf-8\r\n"
                       b"Content-Transfer-Encoding: 8bit\r\n")
    cfg = submission_cfg(tmp_path, dovecot, tls_certs)
    r = client.run("-C", cfg, "-f", "a@x.test", "b@y.test", input=msg)
    assert r.returncode == 0, r.stderr
    assert split_prepended(relayed(relay_sink, mid).data, msg) == ["Received"]


# ---------------------------------------------------------------- LMTP

@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_lmtp_maildir(client, dovecot, tls_certs, tmp_path, unix):
    body = (b"First line.\r\n.\r\n..two dots\r\n\xc3\xa9t\xc3\xa9\r\n"
            + b"0123456789" * 99 + b"\r\n" + b"more text\r\n" * 5000)
    msg, mid = message("lmtp", body)
    before = dovecot.deliveries("user")
    cfg = lmtp_cfg(tmp_path, dovecot, tls_certs, unix=unix)
    r = client.run("-C", cfg, "-f", "a@x.test", "user@mx.test", input=msg)
    assert r.returncode == 0, r.stderr.decode(errors="replace") + dovecot.log()[-2000:]
    got = read(dovecot.wait_delivery("user", before))
    assert split_prepended(got, msg) == LMTP_PREPENDED
    assert b"Return-Path: <a@x.test>\n" in got.split(b"\n\n")[0]


def test_lmtp_two_recipients(client, dovecot, tls_certs, tmp_path):
    msg, mid = message("two")
    before = {u: dovecot.deliveries(u) for u in ("user", "other")}
    cfg = lmtp_cfg(tmp_path, dovecot, tls_certs)
    r = client.run("-C", cfg, "-f", "a@x.test", "user@mx.test", "other@mx.test", input=msg)
    assert r.returncode == 0, r.stderr
    for u in ("user", "other"):
        got = read(dovecot.wait_delivery(u, before[u]))
        # with several recipients Dovecot leaves out Delivered-To (it would
        # name one of them in every copy)
        assert split_prepended(got, msg) == ["Return-Path", "Received"]


def test_lmtp_refused_recipient(client, dovecot, tls_certs, tmp_path):
    """Dovecot refuses an unknown user at RCPT (550 5.1.1): by default nothing
    is delivered to anyone and the exit status says why."""
    msg, mid = message("refused")
    before = dovecot.deliveries("user")
    cfg = lmtp_cfg(tmp_path, dovecot, tls_certs)
    r = client.run("-C", cfg, "-f", "a@x.test", "user@mx.test", "nosuchuser@mx.test",
                   input=msg)
    assert r.returncode == client.exit["refused"], (r.returncode, r.stderr)
    assert b"nosuchuser@mx.test" in r.stderr
    time.sleep(0.3)
    assert dovecot.deliveries("user") == before


def test_lmtp_bare_line_ends(client, dovecot, tls_certs, tmp_path):
    """Bare LF and bare CR in the input become CRLF line ends (no smuggled
    "\\n.\\r\\n" end of data): Dovecot stores exactly the normalised message."""
    msg, mid = message("bare", b"smuggle\n.\r\nMAIL FROM:<x@y>\r\n\r.\r..\r\nend\n")
    before = dovecot.deliveries("user")
    cfg = lmtp_cfg(tmp_path, dovecot, tls_certs)
    r = client.run("-C", cfg, "-f", "a@x.test", "user@mx.test", input=msg)
    assert r.returncode == 0, r.stderr
    got = read(dovecot.wait_delivery("user", before))
    if "bare-cr" in client.quirks:   # LF made CRLF, bare CR left alone
        assert split_prepended(got, re.sub(rb"(?<!\r)\n", b"\r\n", msg)) == LMTP_PREPENDED
        return
    normalised = re.sub(rb"\r\n|\r|\n", b"\r\n", msg)
    assert split_prepended(got, normalised) == LMTP_PREPENDED


def test_submission_no_auth_in_clear(client, dovecot, relay_sink, tls_certs, tmp_path):
    """Without TLS Dovecot offers no AUTH (disable_plaintext_auth): the client
    must fail instead of sending the password or the message.  Dovecot counts
    a connection whose remote and local addresses are equal as secure, so the
    client connects from 127.0.0.2 (source_ip)."""
    msg, mid = message("clear")
    cfg = submission_cfg(tmp_path, dovecot, tls_certs, tls=False, tls_starttls=None,
                         source_ip="127.0.0.2")
    r = client.run("-C", cfg, "-f", "a@x.test", "b@y.test", input=msg)
    assert r.returncode == client.exit["noauth"], (r.returncode, r.stderr)
    time.sleep(0.2)
    assert not any(mid.encode() in t.data for t in relay_sink.messages)


def test_submission_untrusted_ca(client, dovecot, relay_sink, tls_certs, tmp_path):
    msg, mid = message("untrusted")
    cfg = submission_cfg(tmp_path, dovecot, tls_certs, tls_trust_file=tls_certs.other_ca)
    r = client.run("-C", cfg, "-f", "a@x.test", "b@y.test", input=msg)
    assert r.returncode == client.exit["tls"], (r.returncode, r.stderr)
    time.sleep(0.2)
    assert not any(mid.encode() in t.data for t in relay_sink.messages)
