"""Hostile servers and hostile input that a scripted dialogue cannot express:
SCRAM servers that skip or repeat their proof (the nonce is random), and
message bodies cut at the client's 64 KB and 1 MB boundaries.  Issue 3,
"Security properties" 4 and 5; docs/ARCHITECTURE.md §6 invariant 2."""
import base64

import pytest

from servers import RawServer
from servers.sasl import ScramServer

MSG = (b"From: a@x.test\r\nTo: b@y.test\r\nDate: Sun, 29 Nov 2026 00:00:00 +0000\r\n"
       b"Message-ID: <1@x.test>\r\nSubject: t\r\n\r\n")


class ScramRaw(RawServer):
    """AUTH SCRAM-SHA-256 from servers/sasl.py, then a misbehaviour:
    'early-235' answers the client-final with 235 (no server-final);
    'extra-334' sends one more challenge after the server-final;
    'final-in-235' puts the server-final in the 235 text instead of a 334."""

    def __init__(self, mode, **kw):
        super().__init__(**kw)
        self.mode = mode
        self.client_lines = []   # every SASL response line after AUTH

    def cmd_AUTH(self, s, arg):
        parts = arg.split()
        scram = ScramServer(self.users, "sha256", iterations=4096)
        first = base64.b64decode(parts[1]).decode()
        s.reply("334 " + base64.b64encode(scram.first(first).encode()).decode())
        final = s.readline()
        self.client_lines.append(final)
        user, server_final = scram.final(base64.b64decode(final).decode())
        if self.mode == "early-235" or user is None:
            s.user = user
            return s.reply("235 2.7.0 authenticated")
        if self.mode == "final-in-235":
            s.user = user
            return s.reply("235 " + base64.b64encode(server_final.encode()).decode())
        s.reply("334 " + base64.b64encode(server_final.encode()).decode())
        empty = s.readline()
        self.client_lines.append(empty)
        if self.mode == "extra-334":
            s.reply("334 " + base64.b64encode(server_final.encode()).decode())
            self.client_lines.append(s.readline())
            return s.reply("501 5.7.0 cancelled")
        s.user = user
        s.reply("235 2.7.0 authenticated")


@pytest.fixture
def scram_server(tls_certs):
    started = []

    def make(mode):
        srv = ScramRaw(mode, certs=tls_certs, implicit_tls=True, auth=["SCRAM-SHA-256"],
                       chunking=False).start()
        started.append(srv)
        return srv
    yield make
    for s in started:
        s.stop()


def _cfg(write_config, srv):
    return write_config(srv, tls=True, tls_starttls=False, auth="scram-sha-256",
                        user="user", password="password")


def test_scram_235_before_server_final_is_refused(scram_server, write_config, sendmail):
    srv = scram_server("early-235")
    r = sendmail("-C", _cfg(write_config, srv), "-f", "a@x.test", "b@y.test", input=MSG)
    assert r.returncode == 77, r.stderr
    assert b"without proving" in r.stderr
    assert srv.txns == []
    assert not any(l.startswith(b"MAIL") for l in srv.conn.client_lines())


def test_scram_extra_challenge_is_cancelled(scram_server, write_config, sendmail):
    srv = scram_server("extra-334")
    r = sendmail("-C", _cfg(write_config, srv), "-f", "a@x.test", "b@y.test", input=MSG)
    assert r.returncode == 76, r.stderr
    # client-final once, the empty answer to server-final, then "*": no proof resent
    assert srv.client_lines[1:] == [b"", b"*"], srv.client_lines


def test_scram_server_final_in_235_is_refused(scram_server, write_config, sendmail):
    # RFC 4954 §4 has no additional data with success: the proof must come in a 334
    srv = scram_server("final-in-235")
    r = sendmail("-C", _cfg(write_config, srv), "-f", "a@x.test", "b@y.test", input=MSG)
    assert r.returncode != 0, r.stderr


def test_scram_well_behaved_passes(scram_server, write_config, sendmail):
    srv = scram_server("ok")
    r = sendmail("-C", _cfg(write_config, srv), "-f", "a@x.test", "b@y.test",
                 input=MSG + b"hi\r\n")
    assert r.returncode == 0, r.stderr
    assert srv.wait_txn().data == MSG + b"hi\r\n"


def _body_at(offset, tail):
    """MSG plus filler lines so that `tail` starts at byte `offset` of the input."""
    fill = offset - len(MSG)
    lines = []
    while fill > 80:
        lines.append(b"x" * 78 + b"\n")
        fill -= 79
    lines.append(b"y" * (fill - 1) + b"\n")
    body = MSG + b"".join(lines)
    assert len(body) == offset
    return body + tail


@pytest.mark.parametrize("chunking", [False, True])
@pytest.mark.parametrize("offset", [65535, 65536, 524287, 524288, 1048575, 1048576])
@pytest.mark.parametrize("tail,want", [
    (b"\r.\r\nend\n", b"\r\n.\r\nend\r\n"),          # bare CR, then a lone dot line
    (b"\r\n.\r\nend\n", b"\r\n.\r\nend\r\n"),        # CRLF split at the boundary
    (b"\r\r\n.\nend", b"\r\n\r\n.\r\nend\r\n"),      # CR CRLF, dot line with bare LF
    (b".\r", b".\r\n"),                              # dot line ending in a bare CR at EOF
])
def test_boundaries_cannot_end_data_early(raw_server, write_config, sendmail, offset, tail,
                                          want, chunking):
    srv = raw_server(chunking=chunking)
    cfg = write_config(srv, tls=False)
    body = _body_at(offset, tail)
    r = sendmail("-i", "-C", cfg, "-f", "a@x.test", "b@y.test", input=body)
    assert r.returncode == 0, r.stderr
    txn = srv.wait_txn()
    expect = body[:offset].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + want
    assert txn.data == expect
    if not chunking:   # BDAT chunks are counted, not scanned for line ends
        assert srv.conns[0].bare_cr_lf() == []


def test_empty_message(raw_server, write_config, sendmail):
    srv = raw_server(chunking=False)
    r = sendmail("-i", "-C", write_config(srv, tls=False), "-f", "a@x.test", "b@y.test",
                 input=b"")
    assert r.returncode == 0, r.stderr
    data = srv.wait_txn().data
    # sendmail adds the header fields a message must have (RFC 5322 §3.6); nothing else
    assert data == b"" or (data.endswith(b"\r\n") and b"\r\n\r\n" not in data[:-2]), data
    assert srv.conns[0].bare_cr_lf() == []


class EarlyDone(RawServer):
    """Answers the first (non-LAST) BDAT chunk with its 250 and, in the same
    write, a "250 queued" as if the message were complete."""

    def cmd_BDAT(self, s, arg):
        parts = arg.split()
        s.read_exact(int(parts[0]))
        if len(parts) == 2:
            return s.reply("250 2.0.0 queued")
        s.send(b"250 2.0.0 chunk received\r\n250 2.0.0 queued\r\n")


def test_bdat_extra_reply_before_last(tls_certs, write_config, sendmail):
    srv = EarlyDone(certs=tls_certs, chunking=True).start()
    try:
        body = MSG + (b"x" * 70 + b"\n") * 10000       # over one 512 KB chunk
        r = sendmail("-C", write_config(srv, tls=False), "-f", "a@x.test", "b@y.test",
                     input=body)
        assert r.returncode == 76, r.stderr
        assert b"unexpected data" in r.stderr
    finally:
        srv.stop()
