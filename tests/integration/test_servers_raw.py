"""Self-checks of RawServer (BDAT, BINARYMIME, LMTP) and the fault servers,
driven by raw sockets and msmtp.  Fast: every msmtp run has a 2 s timeout."""
import socket
import time

import pytest

from servers import FAULT_KINDS

MSG_LF = (b"From: a@example.test\nTo: b@example.test\nDate: Sun, 29 Nov 2026 00:00:00 +0000\n"
          b"Message-ID: <1@example.test>\nSubject: t\n\nbody\n")
MSG = MSG_LF.replace(b"\n", b"\r\n")


class Client:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.f = self.s.makefile("rb")

    def reply(self):
        lines = []
        while True:
            l = self.f.readline()
            lines.append(l)
            if len(l) < 4 or l[3:4] != b"-":
                return b"".join(lines)

    def send(self, data):
        self.s.sendall(data)

    def close(self):
        self.f.close()
        self.s.close()


def test_bdat_binarymime_pipelined(raw_server):
    srv = raw_server()
    c = Client(srv.port)
    assert c.reply().startswith(b"220")
    c.send(b"EHLO c.test\r\n")
    ehlo = c.reply()
    assert b"CHUNKING" in ehlo and b"BINARYMIME" in ehlo
    body = b"bin\x00ary\nbare LF\rCR\r\n.\r\n"
    c.send(b"MAIL FROM:<a@x.test> BODY=BINARYMIME\r\nRCPT TO:<b@x.test>\r\n"
           b"BDAT 10\r\n" + body[:10] + b"BDAT %d LAST\r\n" % (len(body) - 10) + body[10:])
    replies = [c.reply() for _ in range(4)]
    assert [r[:3] for r in replies] == [b"250"] * 4, replies
    c.send(b"QUIT\r\n")
    c.reply()
    t = srv.wait_txn()
    assert t.data == body and t.bdat_sizes == [10, len(body) - 10]
    assert t.param("BODY") == "BINARYMIME"
    assert srv.conn.sent_ahead and srv.conn.pipelining_violations == []
    assert [b"MAIL FROM:<a@x.test> BODY=BINARYMIME", b"RCPT TO:<b@x.test>"] == \
        srv.conn.groups()[1][:2]


def test_binarymime_with_data_refused_and_violation_detected(raw_server):
    srv = raw_server(pipelining=False)
    c = Client(srv.port)
    c.reply()
    c.send(b"EHLO c.test\r\n")
    c.reply()
    c.send(b"MAIL FROM:<a@x.test> BODY=BINARYMIME\r\nRCPT TO:<b@x.test>\r\nDATA\r\n")
    r = [c.reply() for _ in range(3)]
    assert r[2].startswith(b"503")
    c.close()
    srv.wait_conn_closed()
    assert srv.conn.pipelining_violations == [b"RCPT TO:<b@x.test>", b"DATA"]


def test_lmtp_msmtp_per_recipient_replies(lmtp_server, write_config, msmtp):
    srv = lmtp_server(lmtp_fail={"c@example.test": "452 4.2.2 <c@example.test> mailbox full"})
    cfg = write_config(srv, protocol="lmtp", timeout=2)
    r = msmtp("-C", cfg, "-f", "a@example.test", "b@example.test", "c@example.test",
              input=MSG_LF)
    assert r.returncode != 0 and b"mailbox full" in r.stderr
    t = srv.txns[0]
    assert srv.conn.helo[0].startswith("LHLO")
    assert t.lmtp_replies == ["250 2.0.0 <b@example.test> delivered",
                              "452 4.2.2 <c@example.test> mailbox full"]
    assert t.data == MSG


def test_lmtp_rejects_ehlo(lmtp_server, write_config, msmtp):
    srv = lmtp_server()
    cfg = write_config(srv, timeout=2)     # protocol smtp against an LMTP server
    r = msmtp("-C", cfg, "-f", "a@example.test", "b@example.test", input=MSG_LF)
    assert r.returncode != 0 and srv.messages == []


def test_raw_starttls_auth_with_msmtp(raw_server, write_config, msmtp):
    srv = raw_server(require_starttls=True, auth=["PLAIN", "LOGIN"])
    cfg = write_config(srv, tls=True, tls_starttls=True, auth="login", user="user",
                       password="password", host="localhost", timeout=2)
    r = msmtp("-C", cfg, "-f", "a@example.test", "b@example.test", input=MSG_LF)
    assert r.returncode == 0, r.stderr
    assert srv.conn.plaintext_commands() == ["EHLO", "STARTTLS"]
    assert srv.conn.auth[0].success and srv.wait_txn().tls


def _run(msmtp, write_config, srv, **keys):
    keys.setdefault("timeout", 2)
    cfg = write_config(srv, **keys)
    t0 = time.monotonic()
    r = msmtp("-C", cfg, "-f", "a@example.test", "b@example.test", input=MSG_LF, timeout=15)
    return r, time.monotonic() - t0


@pytest.mark.parametrize("kind", ["refused", "stall", "stall_after_mail", "drop_mid_data",
                                  "garbage", "long_line", "endless_multiline", "bad_code",
                                  "control_chars"])
def test_fault_kinds_fail_msmtp(fault_server, write_config, msmtp, kind):
    srv = fault_server(kind)
    r, elapsed = _run(msmtp, write_config, srv)
    assert r.returncode != 0, (kind, r.stderr)
    assert elapsed < 8
    assert srv.messages == []
    if kind == "control_chars":
        assert b"\x1b" not in r.stderr
    if kind == "stall_after_mail":
        assert srv.conn.commands[-1][0].startswith("MAIL FROM:")


def test_fault_starttls_injection(fault_server, write_config, msmtp):
    srv = fault_server("starttls_injection", auth=["PLAIN"])
    r, _ = _run(msmtp, write_config, srv, tls=True, tls_starttls=True, auth="plain",
                user="user", password="password", host="localhost")
    # the segment really carried both replies
    assert b"220 2.0.0 ready\r\n250 AUTH PLAIN\r\n" in [c.data for c in srv.conn.chunks]
    assert b"AUTH" not in srv.conn.client_bytes()
    assert r.returncode != 0


def test_fault_no_starttls(fault_server, write_config, msmtp):
    srv = fault_server("no_starttls")
    r, _ = _run(msmtp, write_config, srv, tls=True, tls_starttls=True)
    assert r.returncode != 0
    assert srv.conn.plaintext_commands()[:1] == ["EHLO"]
    assert "MAIL" not in srv.conn.plaintext_commands()


@pytest.mark.parametrize("cert", ["expired", "wronghost", "untrusted", "notyet"])
def test_fault_bad_cert(fault_server, write_config, msmtp, cert):
    srv = fault_server("bad_cert", cert=cert)
    r, _ = _run(msmtp, write_config, srv, tls=True, tls_starttls=True, host="localhost")
    assert r.returncode != 0
    assert srv.conn.client_bytes(tls=True) == b""


def test_fault_trickle_one_byte_per_write(fault_server):
    srv = fault_server("trickle", delay=0.001)
    c = Client(srv.port)
    assert c.f.readline().startswith(b"220 mx.test")
    c.close()
    srv.wait_conn_closed()
    sent = [ch.data for ch in srv.conn.chunks if ch.dir == "S"]
    assert len(sent) > 40 and all(len(d) == 1 for d in sent)


def test_fault_kinds_documented():
    import servers.faults as f
    for k in FAULT_KINDS:
        assert k in f.__doc__


def test_fault_bad_cert_implicit_tls_is_recorded(fault_server, write_config, msmtp):
    srv = fault_server("bad_cert", cert="untrusted", implicit_tls=True)
    r, _ = _run(msmtp, write_config, srv, tls=True, tls_starttls=False, host="localhost")
    assert r.returncode != 0 and b"certificate" in r.stderr.lower()
    srv.wait_conn_closed()
    assert srv.conn.client_bytes() == b"" and any("closed" in n for n in srv.conn.notes)


def test_lmtp_over_unix_socket(lmtp_server, write_config, msmtp, tmp_path):
    path = str(tmp_path / "lmtp.sock")
    srv = lmtp_server(unix_path=path)
    cfg = write_config(srv, protocol="lmtp", timeout=2)
    r = msmtp("-C", cfg, "-f", "a@example.test", "b@example.test", input=MSG_LF)
    assert r.returncode == 0, r.stderr
    t = srv.wait_txn()
    assert t.lmtp_replies == ["250 2.0.0 <b@example.test> delivered"] and t.data == MSG
