"""bluearrow sendmail + the SMTP engine against the Python test servers (issue 3).

Each security property of the engine has a test here; exit codes follow the
table in man/bluearrow-sendmail.8.
"""
import re
import time

import pytest

from servers.record import rcpt_param

MSG = (b"From: a@x.test\r\nTo: b@y.test\r\nDate: Sun, 29 Nov 2026 00:00:00 +0000\r\n"
       b"Message-ID: <1@x.test>\r\nSubject: t\r\n\r\nbody\r\n")

EX_DATAERR, EX_NOUSER, EX_NOHOST, EX_UNAVAILABLE = 65, 67, 68, 69
EX_TEMPFAIL, EX_PROTOCOL, EX_NOPERM = 75, 76, 77


@pytest.fixture(autouse=True)
def _built(bluearrow):
    return bluearrow


def run(sendmail, cfg, *rcpts, input=MSG, args=(), timeout=30):
    # -i: the data may hold lone "." lines, which end sendmail input without it
    return sendmail("-C", cfg, "-i", "-f", "a@x.test", *args, *(rcpts or ("b@y.test",)),
                    input=input, timeout=timeout)


def verbs(conn):
    return [c[0].split()[0].upper() if isinstance(c[0], str) else c[0].split()[0].upper().decode()
            for c in conn.commands]


def ok(r):
    assert r.returncode == 0, r.stderr.decode(errors="replace")


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"])
def test_starttls_auth(mech, smtp_server, write_config, sendmail):
    srv = smtp_server(starttls=True, auth=[mech], auth_require_tls=True)
    cfg = write_config(srv, tls=True, tls_starttls=True, auth="on", user="user",
                       password="password")
    ok(run(sendmail, cfg))
    txn = srv.wait_txn()
    assert txn.data == MSG and txn.accepted_rcpts == ["b@y.test"]
    conn = srv.conn
    assert conn.plaintext_commands() == ["EHLO", "STARTTLS"]
    assert conn.auth[0].mechanism == mech and conn.auth[0].success and conn.auth[0].tls
    assert len(conn.auth) == 1
    assert conn.bare_cr_lf() == []


def test_auto_picks_strongest(smtp_server, write_config, sendmail):
    srv = smtp_server(starttls=True, auth=["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"])
    cfg = write_config(srv, tls=True, tls_starttls=True, auth="on", user="user",
                       password="password")
    ok(run(sendmail, cfg))
    assert srv.conn.auth[0].mechanism == "SCRAM-SHA-256"


def test_implicit_tls(smtp_server, write_config, sendmail):
    srv = smtp_server(implicit_tls=True, auth=["PLAIN"])
    cfg = write_config(srv, tls=True, tls_starttls=False, auth="plain", user="user",
                       password="password")
    ok(run(sendmail, cfg))
    assert srv.wait_txn().data == MSG
    assert srv.conn.tls_version


def test_no_cleartext_auth_without_tls(smtp_server, write_config, sendmail):
    srv = smtp_server(auth=["PLAIN", "LOGIN"])
    cfg = write_config(srv, auth="on", user="user", password="password")
    r = run(sendmail, cfg)
    assert r.returncode == EX_NOPERM, r.stderr
    assert b"TLS" in r.stderr
    assert srv.conn.auth == [] and "AUTH" not in verbs(srv.conn)


def test_wrong_password(smtp_server, write_config, sendmail):
    srv = smtp_server(starttls=True, auth=["PLAIN"])
    cfg = write_config(srv, tls=True, auth="plain", user="user", password="wrong")
    r = run(sendmail, cfg)
    assert r.returncode == EX_NOPERM, r.stderr
    assert b"535" in r.stderr and b"wrong" not in r.stderr
    assert len(srv.conn.auth) == 1


def test_scram_bad_server_signature(smtp_server, write_config, sendmail):
    srv = smtp_server(starttls=True, auth=["SCRAM-SHA-256"], scram_bad_signature=True)
    cfg = write_config(srv, tls=True, auth="scram-sha-256", user="user", password="password")
    r = run(sendmail, cfg)
    assert r.returncode in (EX_NOPERM, EX_PROTOCOL), r.stderr
    assert srv.txns == []


def test_verbose_redacts(smtp_server, write_config, sendmail):
    srv = smtp_server(starttls=True, auth=["LOGIN"])
    cfg = write_config(srv, tls=True, auth="login", user="user", password="password")
    r = run(sendmail, cfg, args=("-v",))
    ok(r)
    err = r.stderr.decode()
    assert "--> AUTH LOGIN" in err and "<redacted>" in err
    assert "cGFzc3dvcmQ=" not in err and "password" not in err  # base64("password")
    assert "<-- 235" in err


@pytest.mark.parametrize("pipelining", [True, False])
def test_pipelining_grouping(pipelining, smtp_server, write_config, sendmail):
    srv = smtp_server(pipelining=pipelining)
    cfg = write_config(srv)
    ok(run(sendmail, cfg, "b@y.test", "c@y.test"))
    conn = srv.conn
    groups = [[l.split()[0].upper().decode() for l in g if l] for g in conn.groups()]
    if pipelining:
        assert ["MAIL", "RCPT", "RCPT", "DATA"] in groups, groups
    else:
        assert all(len(g) == 1 for g in groups if g and g[0] in ("MAIL", "RCPT", "DATA")), groups
    assert conn.pipelining_violations == []


def test_size_refused_before_data(smtp_server, write_config, sendmail):
    srv = smtp_server(size=1000)
    cfg = write_config(srv)
    r = run(sendmail, cfg, input=MSG + (b"x" * 80 + b"\r\n") * 25)
    assert r.returncode == EX_DATAERR, r.stderr
    assert b"1000" in r.stderr
    assert "MAIL" not in verbs(srv.conn) and "DATA" not in verbs(srv.conn)


def test_size_param_sent(smtp_server, write_config, sendmail):
    srv = smtp_server(size=100000)
    cfg = write_config(srv)
    ok(run(sendmail, cfg))
    assert srv.wait_txn().param("SIZE") == str(len(MSG))


def test_dsn_params(smtp_server, write_config, sendmail):
    srv = smtp_server(dsn=True)
    cfg = write_config(srv, dsn_notify="success,failure", dsn_return="headers")
    ok(run(sendmail, cfg))
    txn = srv.wait_txn()
    assert txn.param("RET") == "HDRS"
    assert rcpt_param(txn.rcpts[0], "NOTIFY") == "SUCCESS,FAILURE"


def test_chunking(raw_server, write_config, sendmail):
    srv = raw_server(chunking=True)
    cfg = write_config(srv)
    body = MSG + (b"line .\r\n.dot\r\n" * 100000)
    ok(run(sendmail, cfg, input=body))
    txn = srv.wait_txn()
    assert txn.data == body
    assert len(txn.bdat_sizes) >= 2 and sum(txn.bdat_sizes) == len(body)
    assert "DATA" not in verbs(srv.conn)


def test_lmtp_one_recipient_fails(lmtp_server, write_config, sendmail):
    srv = lmtp_server(lmtp_fail={"c@y.test": "452 4.2.2 mailbox full"})
    cfg = write_config(srv, protocol="lmtp")
    r = run(sendmail, cfg, "b@y.test", "c@y.test")
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert b"c@y.test" in r.stderr and b"452" in r.stderr
    txn = srv.wait_txn()
    assert txn.lmtp_replies and len(txn.lmtp_replies) == 2
    assert srv.conn.helo[0].upper().startswith("LHLO")


def test_lmtp_partial_delivery(lmtp_server, write_config, sendmail):
    srv = lmtp_server(lmtp_fail={"c@y.test": "550 5.1.1 no such user"})
    cfg = write_config(srv, protocol="lmtp", partial_delivery=True)
    r = run(sendmail, cfg, "b@y.test", "c@y.test")
    ok(r)
    assert b"c@y.test" in r.stderr and b"550" in r.stderr


def test_refused_recipient_nothing_sent(smtp_server, write_config, sendmail):
    srv = smtp_server(pipelining=False)
    cfg = write_config(srv)
    r = run(sendmail, cfg, "b@y.test", "reject-me@y.test")
    assert r.returncode == EX_NOUSER, r.stderr
    assert b"reject-me@y.test" in r.stderr and b"550" in r.stderr
    assert srv.messages == []


def test_refused_recipient_pipelined_nothing_sent(smtp_server, write_config, sendmail):
    srv = smtp_server(pipelining=True)
    cfg = write_config(srv)
    r = run(sendmail, cfg, "b@y.test", "temp-me@y.test")
    assert r.returncode == EX_TEMPFAIL, r.stderr
    time.sleep(0.2)
    assert srv.messages == []


def test_all_refused(smtp_server, write_config, sendmail):
    srv = smtp_server()
    cfg = write_config(srv)
    r = run(sendmail, cfg, "reject-a@y.test", "reject-b@y.test")
    assert r.returncode == EX_NOUSER, r.stderr


def test_partial_delivery(smtp_server, write_config, sendmail):
    srv = smtp_server()
    cfg = write_config(srv, partial_delivery=True)
    r = run(sendmail, cfg, "b@y.test", "reject-me@y.test")
    ok(r)
    assert b"reject-me@y.test" in r.stderr
    assert srv.wait_txn().accepted_rcpts == ["b@y.test"]


SMUGGLE = [
    b"a\n.\r\nMAIL FROM:<evil@x>\r\n",
    b"a\r\n.\nRCPT TO:<evil@x>\r\n",
    b"a\r.\rDATA\r\n",
    b".\r\n.\r\n..\r\n",
    b"a\r\n.\r\n",
]


@pytest.mark.parametrize("tail", SMUGGLE)
@pytest.mark.parametrize("chunking", [False, True])
def test_no_smuggling(tail, chunking, raw_server, write_config, sendmail):
    srv = raw_server(chunking=chunking)
    cfg = write_config(srv)
    body = MSG + tail
    ok(run(sendmail, cfg, input=body))
    txn = srv.wait_txn()
    # bare CR and LF became CRLF: the data is the normalised input, byte for byte
    want = re.sub(rb"\r\n|\r|\n", b"\r\n", body)
    assert txn.data == want
    assert srv.conn.bare_cr_lf() == []
    assert len(srv.txns) == 1


def test_8bit_to_server_without_8bitmime(smtp_server, write_config, sendmail):
    import email
    import email.policy
    srv = smtp_server(eightbitmime=False)
    cfg = write_config(srv)
    r = run(sendmail, cfg, input=MSG + "Grüße\r\n".encode())
    ok(r)
    txn = srv.wait_txn()
    assert not txn.has_8bit and "BODY" not in " ".join(txn.mail_params)
    assert all(b < 0x80 for b in txn.data)
    m = email.message_from_bytes(txn.data, policy=email.policy.default)
    assert m["Subject"] == "t"
    assert m.get_payload(decode=True) == "body\r\nGrüße\r\n".encode()


def test_8bit_with_8bitmime(smtp_server, write_config, sendmail):
    srv = smtp_server()
    cfg = write_config(srv)
    body = MSG + "Grüße\r\n".encode()
    ok(run(sendmail, cfg, input=body))
    txn = srv.wait_txn()
    assert txn.data == body and txn.param("BODY") == "8BITMIME"


def test_long_line_reencoded(smtp_server, write_config, sendmail):
    import email
    import email.policy
    srv = smtp_server()
    cfg = write_config(srv)
    r = run(sendmail, cfg, input=MSG + b"x" * 2000 + b"\r\n")
    ok(r)
    txn = srv.wait_txn()
    assert txn.max_line_length <= 998
    m = email.message_from_bytes(txn.data, policy=email.policy.default)
    assert m.get_payload(decode=True) == b"body\r\n" + b"x" * 2000 + b"\r\n"


def test_idn_domain_to_alabel(smtp_server, write_config, sendmail):
    srv = smtp_server()
    cfg = write_config(srv)
    ok(run(sendmail, cfg, "b@bücher.example"))
    assert srv.wait_txn().accepted_rcpts == ["b@xn--bcher-kva.example"]


def test_utf8_local_part_without_smtputf8(smtp_server, write_config, sendmail):
    srv = smtp_server()
    cfg = write_config(srv)
    r = run(sendmail, cfg, "jörg@y.test")
    assert r.returncode == EX_DATAERR and b"SMTPUTF8" in r.stderr


def test_utf8_with_smtputf8(smtp_server, write_config, sendmail):
    srv = smtp_server(smtputf8=True)
    cfg = write_config(srv)
    ok(run(sendmail, cfg, "jörg@bücher.example"))
    txn = srv.wait_txn()
    assert txn.accepted_rcpts == ["jörg@bücher.example"]
    assert "SMTPUTF8" in txn.mail_params


def test_injection_in_address(smtp_server, write_config, sendmail):
    srv = smtp_server()
    cfg = write_config(srv)
    # controls in an argument are a usage error of the sendmail personality (64)
    for bad, code in [("b@y.test> NOTIFY=NEVER", EX_DATAERR), ("b@y.test\r\nRSET", 64),
                      ("<b@y.test>", EX_DATAERR)]:
        r = run(sendmail, cfg, bad)
        assert r.returncode == code, (bad, r.stderr)
    assert srv.txns == []


def test_large_spooled_message(smtp_server, write_config, sendmail):
    srv = smtp_server()
    cfg = write_config(srv)
    body = MSG + b"0123456789abcdef" * 4 + b"\r\n"
    body = MSG + (b"y" * 70 + b"\r\n") * 50000  # 3.6 MB: spills past the 1 MB kept in memory
    ok(run(sendmail, cfg, input=body))
    assert srv.wait_txn().data == body


def test_sendmail_argv0(smtp_server, write_config, bluearrow):
    import os
    import subprocess
    srv = smtp_server()
    cfg = write_config(srv)
    link = os.path.join(os.path.dirname(bluearrow), "sendmail")
    r = subprocess.run([link, "-C", cfg, "-f", "a@x.test", "b@y.test"], input=MSG,
                       capture_output=True, timeout=20)
    ok(r)


# ---- faults and hostile servers -------------------------------------------

FAULTS = [
    ("refused", {}, EX_TEMPFAIL, b"refused"),
    ("stall", {}, EX_TEMPFAIL, b"in time"),
    ("stall_after_mail", {}, EX_TEMPFAIL, b"in time"),
    ("drop_mid_data", {"chunking": False}, EX_TEMPFAIL, None),
    ("garbage", {}, EX_PROTOCOL, b"malformed"),
    ("long_line", {}, EX_PROTOCOL, b"longer than"),
    ("endless_multiline", {}, EX_PROTOCOL, b"lines"),
    ("trickle", {"delay": 0.2}, EX_TEMPFAIL, b"in time"),
    ("bad_code", {}, EX_PROTOCOL, b"malformed"),
    ("control_chars", {}, EX_PROTOCOL, None),
]


@pytest.mark.parametrize("kind,opts,code,text", FAULTS, ids=[f[0] for f in FAULTS])
def test_fault(kind, opts, code, text, fault_server, write_config, sendmail):
    srv = fault_server(kind, **opts)
    cfg = write_config(srv, timeout=2)
    t0 = time.monotonic()
    r = run(sendmail, cfg, input=MSG + (b"z" * 100 + b"\r\n") * 3000 if kind == "drop_mid_data" else MSG)
    assert r.returncode == code, r.stderr
    if text:
        assert text in r.stderr, r.stderr
    assert time.monotonic() - t0 < 15
    # server text is data: no escape or control characters reach the terminal
    assert not re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", r.stderr), r.stderr
    assert "\u009b".encode() not in r.stderr


def test_host_not_found(write_config, sendmail):
    cfg = write_config(text="account t\nhost no-such-host.invalid\nport 25\ntimeout 5\n"
                            "account default : t\n")
    r = run(sendmail, cfg)
    assert r.returncode == EX_NOHOST, r.stderr


def test_starttls_injection(fault_server, write_config, sendmail):
    srv = fault_server("starttls_injection")
    cfg = write_config(srv, tls=True, tls_starttls=True, auth="plain", user="user",
                       password="password")
    r = run(sendmail, cfg)
    assert r.returncode == EX_PROTOCOL, r.stderr
    assert verbs(srv.conn) == ["EHLO", "STARTTLS"]


def test_starttls_not_offered(fault_server, write_config, sendmail):
    srv = fault_server("no_starttls")
    cfg = write_config(srv, tls=True, tls_starttls=True, auth="plain", user="user",
                       password="password")
    r = run(sendmail, cfg)
    assert r.returncode == EX_UNAVAILABLE, r.stderr
    assert b"STARTTLS" in r.stderr
    assert verbs(srv.conn) in (["EHLO"], ["EHLO", "QUIT"])


@pytest.mark.parametrize("cert,implicit", [("expired", False), ("wronghost", False),
                                           ("untrusted", False), ("clientonly", False),
                                           ("expired", True), ("wronghost", True)])
def test_bad_certificate(cert, implicit, fault_server, write_config, sendmail):
    srv = fault_server("bad_cert", cert=cert, implicit_tls=implicit)
    cfg = write_config(srv, tls=True, tls_starttls=not implicit, auth="plain", user="user",
                       password="password")
    r = run(sendmail, cfg)
    assert r.returncode == EX_UNAVAILABLE, r.stderr
    assert b"certificate" in r.stderr
    cmds = verbs(srv.conn) if srv.conns else []
    assert "AUTH" not in cmds and "MAIL" not in cmds


def test_lmtp_unix_socket(lmtp_server, write_config, sendmail, tmp_path):
    srv = lmtp_server(unix_path=str(tmp_path / "lmtp.sock"))
    cfg = write_config(srv, protocol="lmtp")
    ok(run(sendmail, cfg, "b@y.test", "c@y.test"))
    txn = srv.wait_txn()
    assert txn.data == MSG and len(txn.lmtp_replies) == 2


def test_many_messages_one_session(smtp_server, write_config, sendmail):
    srv = smtp_server()
    cfg = write_config(srv)
    ok(run(sendmail, cfg, args=("--ba-repeat", "5")))
    srv.wait_messages(5)
    assert len(srv.conns) == 1
    assert all(t.data == MSG for t in srv.txns)
