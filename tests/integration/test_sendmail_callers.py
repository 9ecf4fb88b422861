"""The sendmail personality as Debian 12's callers run it: each daemon's exact
flag set replayed against a real (aiosmtpd) server, and the message checked
byte for byte on arrival; Bcc must never leak and must still be a recipient.

SUT_SENDMAIL=msmtp runs the same cases against msmtp (the cases that rely on
sendmail's lone-dot rule, which msmtp does not implement, are marked)."""
import os
import subprocess

import pytest

from conftest import sut_sendmail_cmd

SUT_IS_MSMTP = os.path.basename(sut_sendmail_cmd()[0]) == "msmtp"

HDR = (b"From: Cron Daemon <root@host.example.test>\n"
       b"Date: Sun, 29 Nov 2026 00:00:00 +0000\n"
       b"Message-ID: <cron.1@host.example.test>\n")


def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# (name, flags before the recipients, recipients, headers after HDR, -t?, bcc?)
CALLERS = [
    ("debian-cron", ["-FCronDaemon", "-i", "-B8BITMIME", "-oem"], ["root"],
     b"To: root\nSubject: Cron <root@host> run-parts\n", False),
    ("cronie", ["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root@host.example.test"], [],
     b"To: admin@example.test\nBcc: audit@example.test\nSubject: Cron <root@host> job\n", True),
    ("vixie-cron", ["-FCronDaemon", "-odi", "-oem", "-oi", "-t"], [],
     b"To: admin@example.test\nSubject: Cron <root@host> job\n", True),
    ("busybox-crond", ["-t", "-oem", "-i"], [],
     b"To: admin@example.test\nBcc: audit@example.test\nSubject: cron\n", True),
    ("anacron", ["-FAnacron", "-odi"], ["admin@example.test"],
     b"To: admin@example.test\nSubject: Anacron job 'cron.daily'\n", False),
    ("atd", ["-i"], ["root"],
     b"Subject: Output from your job 7\nTo: root\n", False),
    ("systemd-cron", ["-i", "-B8BITMIME"], ["admin@example.test"],
     b"To: admin@example.test\nSubject: [host] result of cron-daily.service\n", False),
    ("php-mail", ["-t", "-i"], [],
     b"To: user@example.test\nCc: copy@example.test\nBcc: secret@example.test\nSubject: PHP\n", True),
    ("unattended-upgrades", ["-oi", "-t"], [],
     b"To: admin@example.test\nSubject: unattended-upgrades result for host: SUCCESS\n", True),
    ("mdadm-logwatch-sudo", ["-t"], [],
     b"To: root@example.test\nBcc: hidden@example.test\nSubject: *** SECURITY information ***\n", True),
    ("fail2ban", ["-f", "fail2ban@host.example.test"], ["admin@example.test"],
     b"To: admin@example.test\nSubject: [Fail2Ban] sshd: banned 192.0.2.1\n", False),
    ("bsd-mailx-smartd", ["-i", "-t"], [],
     b"To: root@example.test\nSubject: SMART error (FailedReadSmartSelfTest) detected\n", True),
    ("git-send-email", ["-f", "dev@example.test", "-i"], ["list@example.test", "cc@example.test"],
     b"To: list@example.test\nCc: cc@example.test\nSubject: [PATCH 1/3] fix\n", False),
    ("mutt", ["-oem", "-oi", "--"], ["friend@example.test", "bcc-me@example.test"],
     b"To: friend@example.test\nSubject: hi\n", False),
    ("s-nail", ["-i", "--"], ["friend@example.test"],
     b"To: friend@example.test\nSubject: hi\n", False),
]

BODY = (b"\nline one\n.\n..leading dots\n.x\nend of report\n")


def aliases_file(tmp_path):
    p = tmp_path / "aliases"
    p.write_text("root: admin@example.test\n")
    return str(p)


@pytest.mark.parametrize("name,flags,rcpts,hdr,t", CALLERS, ids=[c[0] for c in CALLERS])
def test_caller(name, flags, rcpts, hdr, t, smtp_server, write_config, sendmail, tmp_path):
    srv = smtp_server()
    cfg = write_config(srv, from_="root@host.example.test", aliases=aliases_file(tmp_path))
    msg = HDR + hdr + BODY
    # callers without -i (vixie-cron, mdadm) never send a lone "." line: sendmail would end there
    dots_end = "-i" not in flags and "-oi" not in flags
    if dots_end:
        msg = msg.replace(b"\n.\n", b"\n")
    r = sendmail("-C", cfg, *flags, *rcpts, input=msg)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"" and r.stderr == b"", "sendmail must be silent on success"
    txn = srv.wait_txn()
    # envelope: -f if given, else the account's from
    want_from = flags[flags.index("-f") + 1] if "-f" in flags else "root@host.example.test"
    assert txn.mail_from == want_from
    want_rcpts = []
    if t:
        for line in hdr.split(b"\n"):
            k, _, v = line.partition(b":")
            if k in (b"To", b"Cc", b"Bcc"):
                want_rcpts.append(v.strip().decode())
    want_rcpts += [("admin@example.test" if a == "root" else a) for a in rcpts]
    assert txn.accepted_rcpts == want_rcpts
    # the message: unchanged but for the Bcc field (and line ends on the wire)
    want = b"".join(l + b"\n" for l in msg.split(b"\n")[:-1] if not l.startswith(b"Bcc:"))
    assert txn.data == crlf(want)
    assert b"Bcc" not in txn.data and b"audit@" not in txn.data and b"secret@" not in txn.data
    assert srv.conn.bare_cr_lf() == []


@pytest.mark.skipif(SUT_IS_MSMTP, reason="msmtp reads to the end of input without -i")
def test_lone_dot_ends_input_without_i(smtp_server, write_config, sendmail, tmp_path):
    """sendmail's rule, but what it leaves unsent is reported: a warning on
    stderr and a field in the log line, never a silent loss."""
    srv = smtp_server()
    log = tmp_path / "log"
    cfg = write_config(srv, from_="a@example.test", logfile=str(log))
    msg = HDR + b"To: b@example.test\nSubject: s\n\nkept\n.\ndropped\n" + b"x" * 200000 + b"\n"
    r = sendmail("-C", cfg, "-t", input=msg)
    assert r.returncode == 0, r.stderr
    assert srv.wait_txn().data == crlf(HDR + b"To: b@example.test\nSubject: s\n\nkept\n")
    assert b"200009 bytes after a line '.' were not sent; use -i" in r.stderr
    assert log.read_text().rstrip("\n").endswith(" exitcode=EX_OK dropped_after_dot=200009")
    # nothing after the dot: no warning, no field
    r = sendmail("-C", cfg, "-t", input=msg.split(b"dropped")[0])
    assert r.returncode == 0 and b"warning" not in r.stderr, r.stderr
    assert log.read_text().rstrip("\n").endswith(" exitcode=EX_OK")


def test_generated_from_uses_full_name(smtp_server, write_config, sendmail):
    srv = smtp_server()
    cfg = write_config(srv, from_="root@host.example.test")
    r = sendmail("-C", cfg, "-FCronDaemon", "-i", "admin@example.test",
                 input=b"Subject: x\n\nbody\n")
    assert r.returncode == 0, r.stderr
    data = srv.wait_txn().data
    assert data.startswith(b"From: CronDaemon <root@host.example.test>\r\nDate: ")
    assert b"\r\nMessage-ID: <" in data


@pytest.mark.parametrize("opt,val", [("-f", "a@x.test\r\nRCPT TO:<evil@x.test>"),
                                     ("-f", "a@x.test\nBcc: evil@x.test"),
                                     ("-F", "Name\r\nBcc: evil@x.test"),
                                     ("-F", "Name\x1b[31m"),
                                     ("-N", "success\r\nRSET"),
                                     ("-R", "full\nX"),
                                     ("-V", "id\r\nRSET")])
@pytest.mark.skipif(SUT_IS_MSMTP, reason="msmtp passes these to the server")
def test_injection_refused(opt, val, smtp_server, write_config, sendmail):
    srv = smtp_server()
    cfg = write_config(srv, from_="a@example.test")
    r = sendmail("-C", cfg, opt, val, "b@example.test", input=b"Subject: x\n\nbody\n")
    assert r.returncode == 64, r.stderr
    assert srv.txns == [] and srv.conns == []


@pytest.mark.skipif(SUT_IS_MSMTP, reason="bluearrow's refusals")
@pytest.mark.parametrize("args", [["-X", "/tmp/ba-x.log"], ["-X/tmp/ba-x.log"],
                                  ["-bs"], ["-bd"], ["-bv"],
                                  ["-q1h"], ["--no-such-option"], ["-Z"]])
def test_dangerous_flags_refused(args, smtp_server, write_config, sendmail):
    srv = smtp_server()
    cfg = write_config(srv, from_="a@example.test")
    r = sendmail("-C", cfg, *args, "b@example.test", input=b"Subject: x\n\nbody\n")
    assert r.returncode == 64, r.stderr
    assert not os.path.exists("/tmp/ba-x.log")
    assert srv.conns == []
    assert len(r.stderr.splitlines()) <= 2


@pytest.mark.parametrize("args", [["-O", "DeliveryMode=b"], ["-ODeliveryMode=b"],
                                  ["-O", "QueueDirectory=/tmp", "-oi"]])
def test_O_option_is_accepted_and_ignored(args, smtp_server, write_config, sendmail):
    """Exim and msmtp ignore sendmail.cf options; callers written for sendmail pass them."""
    srv = smtp_server()
    cfg = write_config(srv, from_="a@example.test")
    r = sendmail("-C", cfg, *args, "b@example.test", input=b"Subject: x\n\nbody\n")
    assert r.returncode == 0, r.stderr
    assert srv.wait_txn().accepted_rcpts == ["b@example.test"]


@pytest.mark.skipif(SUT_IS_MSMTP, reason="bluearrow's queue options")
def test_queue_options(sendmail):
    r = sendmail("-bp")
    assert r.returncode == 0 and r.stdout == b"Mail queue is empty\n"
    r = sendmail("-q")
    assert r.returncode == 0 and r.stdout == b"" and r.stderr == b""


def test_dash_args_are_never_recipients(smtp_server, write_config, sendmail):
    """Before "--" an argument starting with '-' is an option; after it, data."""
    srv = smtp_server()
    cfg = write_config(srv, from_="a@example.test")
    r = sendmail("-C", cfg, "-i", "b@example.test", "-t", input=HDR + b"To: c@example.test\n\nx\n")
    assert r.returncode == 0, r.stderr
    # argument recipients first, then the header ones, as msmtp orders them
    assert srv.wait_txn().accepted_rcpts == ["b@example.test", "c@example.test"]


def test_no_recipients_is_usage_error(smtp_server, write_config, sendmail):
    srv = smtp_server()
    cfg = write_config(srv, from_="a@example.test")
    r = sendmail("-C", cfg, "-t", "-i", input=b"Subject: none\n\nx\n")
    assert r.returncode == 64
    assert srv.conns == []


def test_failure_names_account_server_and_reply(smtp_server, write_config, sendmail):
    srv = smtp_server()
    cfg = write_config(srv, from_="a@example.test")
    r = sendmail("-C", cfg, "-i", "reject-me@example.test", input=HDR + b"\nx\n")
    # bluearrow: every recipient refused permanently is EX_NOUSER (67); msmtp says EX_DATAERR
    assert r.returncode == (65 if SUT_IS_MSMTP else 67), r.stderr
    err = r.stderr.decode()
    if not SUT_IS_MSMTP:
        assert len(err.splitlines()) == 1
        assert "test" in err and "127.0.0.1" in err and "550" in err
    assert srv.txns == [] or srv.txns[0].data is None


def test_big_message_spools_and_arrives(smtp_server, write_config, sendmail):
    srv = smtp_server()
    cfg = write_config(srv, from_="a@example.test")
    body = b"".join(b"%08d 0123456789abcdefghijklmnopqrstuvwxyz\n" % i for i in range(80000))
    msg = HDR + b"To: b@example.test\nSubject: big\n\n" + body
    r = sendmail("-C", cfg, "-t", "-i", input=msg, timeout=60)
    assert r.returncode == 0, r.stderr
    assert srv.wait_txn(timeout=60).data == crlf(msg)


@pytest.mark.parametrize("i", [True, False])
def test_message_given_as_file(i, smtp_server, write_config, tmp_path):
    """`sendmail < file`: the body is read back from the file, not copied
    (ba_spool_refer); the file offset where the caller left it is honoured."""
    srv = smtp_server()
    cfg = write_config(srv, from_="a@example.test")
    body = b"".join(b"%08d 0123456789 .\n..\n" % n for n in range(60000))
    msg = HDR + b"To: b@example.test\nBcc: c@example.test\nSubject: file\n\n" + body
    f = tmp_path / "msg"
    f.write_bytes(b"not part of the message\n" + msg + b".\nafter the dot\n")
    with open(f, "rb") as stdin:
        os.lseek(stdin.fileno(), 24, os.SEEK_SET)  # a caller that read a line of its own first
        r = subprocess.run(sut_sendmail_cmd() + ["-C", cfg, "-t"] + (["-i"] if i else []),
                           stdin=stdin, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    txn = srv.wait_txn(timeout=60)
    assert txn.accepted_rcpts == ["b@example.test", "c@example.test"]
    kept = msg.replace(b"Bcc: c@example.test\n", b"")
    assert txn.data == crlf(kept + (b".\nafter the dot\n" if i else b""))


def test_man_page_documents_every_flag():
    """Every flag the personality accepts, ignores or refuses is in bluearrow-sendmail(8)."""
    src = os.environ.get("BA_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
    man = open(os.path.join(src, "man", "bluearrow-sendmail.8")).read()
    flags = ["-t", "-i", "-oi", "-f", "-r", "-F", "-C", "-a", "-N", "-R", "-V", "-v", "-bm",
             "-bp", "-q", "--read-envelope-from", "-oem", "-odi", "-odb", "-B8BITMIME", "-em",
             "-h", "-L", "-p", "-n", "-m", "-U", "-G", "-Ac", "-Am", "-X", "-O", "-bd", "-bs",
             "-bv", "-bi", "-d", "-d0.1", "--", "--file", "--account", "--from", "--read-recipients"]
    for f in flags:
        assert f.replace("-", "\\-") in man, f


def test_8bit_and_long_lines_are_reencoded(smtp_server, write_config, sendmail):
    """A cron job's UTF-8 output to a server without 8BITMIME, and a line over 998 octets:
    both arrive re-encoded (7 bit, lines <= 998) and decode to the original text."""
    import email
    import email.policy
    srv = smtp_server(eightbitmime=False)
    cfg = write_config(srv, from_="root@example.test")
    text = "Grüße aus cron: 5 € \n" + "x" * 3000 + "\n.\nend\n"
    msg = HDR + b"To: a@example.test\nSubject: out\n\n" + text.encode()
    r = sendmail("-C", cfg, "-t", "-i", input=msg)
    assert r.returncode == 0, r.stderr
    txn = srv.wait_txn()
    assert not txn.has_8bit and txn.max_line_length <= 998
    m = email.message_from_bytes(txn.data, policy=email.policy.default)
    assert m.get_payload(decode=True).replace(b"\r\n", b"\n") == text.encode()


@pytest.mark.skipif(SUT_IS_MSMTP, reason="msmtp has no -V")
def test_dsn_options_reach_the_server(smtp_server, write_config, sendmail):
    srv = smtp_server(dsn=True)
    cfg = write_config(srv, from_="a@example.test")
    r = sendmail("-C", cfg, "-i", "-N", "success,failure", "-R", "hdrs", "-V", "env-42",
                 "b@example.test", input=HDR + b"\nx\n")
    assert r.returncode == 0, r.stderr
    txn = srv.wait_txn()
    assert str(txn.param("RET")).upper() == "HDRS" and txn.param("ENVID") == "env-42"
    notify = [p for p in txn.rcpts[0].params if p.upper().startswith("NOTIFY=")]
    assert notify and set(notify[0].split("=", 1)[1].upper().split(",")) == {"SUCCESS", "FAILURE"}


@pytest.mark.skipif(SUT_IS_MSMTP, reason="bluearrow's partial_delivery extension")
def test_partial_delivery_reports_refused(smtp_server, write_config, sendmail):
    srv = smtp_server()
    cfg = write_config(srv, from_="a@example.test", partial_delivery=True)
    r = sendmail("-C", cfg, "-i", "ok@example.test", "reject-x@example.test",
                 input=HDR + b"\nx\n")
    assert r.returncode == 0, r.stderr
    assert srv.wait_txn().accepted_rcpts == ["ok@example.test"]
    assert b"reject-x@example.test" in r.stderr and b"550" in r.stderr


@pytest.mark.skipif(SUT_IS_MSMTP, reason="msmtp's -d prints its configuration")
@pytest.mark.parametrize("flag", [["-d"], ["-d0.1"], ["-d21.12"], ["-id"]])
def test_debug_flag_shows_the_dialogue(flag, smtp_server, write_config, sendmail):
    """sendmail -d (debug) is -v: the dialogue on stderr, never silently ignored."""
    srv = smtp_server()
    cfg = write_config(srv, from_="a@example.test")
    r = sendmail("-C", cfg, *flag, "-i", "b@example.test", input=HDR + b"\nbody\n")
    assert r.returncode == 0, r.stderr
    assert b"EHLO" in r.stderr and b"RCPT TO:<b@example.test>" in r.stderr, r.stderr
    srv.wait_txn()


@pytest.mark.skipif(SUT_IS_MSMTP, reason="msmtp reads to the end of input without -i")
def test_lone_dot_at_a_terminal_ends_the_input(smtp_server, write_config):
    """At a terminal the "." typed by the user ends the input at once: nothing
    after it is waited for."""
    import pty
    srv = smtp_server()
    cfg = write_config(srv, from_="a@example.test")
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(sut_sendmail_cmd() + ["-C", cfg, "b@example.test"], stdin=slave,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.write(master, b"Subject: typed\n\nhello\n.\n")
        out, err = p.communicate(timeout=15)
        assert p.returncode == 0, err
        assert b"warning" not in err
        assert srv.wait_txn().data.endswith(b"\r\nhello\r\n")
    finally:
        os.close(master)
        os.close(slave)
