"""msmtp and bluearrow side by side: one msmtprc with 28 of msmtp's keys and
five accounts, used unchanged by both.  For each scenario both programs send
to the same servers; the envelope, the transmitted message (modulo generated
Date/Message-ID), the exit code and the logfile line's fields must agree."""
import os
import re
import shlex
import shutil
import subprocess

import pytest

from conftest import bluearrow_path

pytestmark = pytest.mark.skipif(not shutil.which("msmtp"), reason="msmtp missing")

HDR = (b"From: Sender <sender@example.test>\n"
       b"Date: Sun, 29 Nov 2026 00:00:00 +0000\n"
       b"Message-ID: <side.1@example.test>\n")


@pytest.fixture
def setup(smtp_server, tmp_path, tls_certs):
    plain = smtp_server()
    secure = smtp_server(starttls=True, auth=["PLAIN"], auth_require_tls=True)
    undis = smtp_server()
    aliases = tmp_path / "aliases"
    aliases.write_text("# local names\nroot: admin@example.test, ops\nops: ops1@example.test\n")
    log = tmp_path / "msmtp.log"
    text = """# 28 msmtp keys, 5 accounts, inheritance
defaults
timeout 10
domain client.example.test
logfile {log}
logfile_time_format "%Y-%m-%d %H:%M:%S"
syslog off
aliases {aliases}
set_date_header auto
set_msgid_header auto
remove_bcc_headers on
dsn_notify off
dsn_return off
protocol smtp
tls off
tls_starttls on
tls_certcheck on

account plain
host 127.0.0.1
port {p1}
from plain@example.test
allow_from_override on
set_from_header auto
auth off

account secure : plain
port {p2}
from sec*@example.test
tls on
tls_trust_file {ca}
auth plain
user user
password password

account undisclosed : plain
port {p3}
from keep@example.test
remove_bcc_headers off
undisclosed_recipients on
set_from_header on
maildomain example.test

account subst : plain
from %U@client.example.test

account auto : plain
auto_from on
maildomain auto.example.test

account default : plain
""".format(log=log, aliases=aliases, p1=plain.port, p2=secure.port, p3=undis.port,
           ca=tls_certs.ca)
    cfg = tmp_path / "msmtprc"
    fd = os.open(str(cfg), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return {"cfg": str(cfg), "log": str(log),
            "servers": {"plain": plain, "secure": secure, "undisclosed": undis}}


def run_both(setup, args, msg):
    """Runs msmtp, then bluearrow; returns [(exit, txn or None, server name, log fields)]."""
    out = []
    for prog in (["msmtp"], [bluearrow_path(), "sendmail"]):
        before = {n: len(s.txns) for n, s in setup["servers"].items()}
        r = subprocess.run(prog + ["-C", setup["cfg"]] + args, input=msg, capture_output=True,
                           timeout=30)
        got = None
        for n, s in setup["servers"].items():
            if len(s.txns) > before[n]:
                got = (n, s.txns[-1])
        lines = open(setup["log"]).read().splitlines() if os.path.exists(setup["log"]) else []
        out.append((r.returncode, got, log_fields(lines[-1]) if lines else None, r.stderr))
    return out


def log_fields(line):
    # "2026-11-29 02:00:00 host=... smtpmsg='...'": drop the time, split like a shell
    m = re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (.*)$", line)
    assert m, line
    return dict(tok.split("=", 1) for tok in shlex.split(m.group(1)))


def strip_generated(data):
    return re.sub(rb"(?m)^(Date|Message-ID): [^\r\n]*\r\n", b"", data)


SCENARIOS = [
    # name, args, message
    ("t", ["-t", "-i"], HDR + b"To: a@example.test\nCc: b@example.test\nBcc: c@example.test\n"
                               b"Subject: -t\n\nbody\n"),
    ("f-no-match", ["-f", "other@example.test", "-i", "x@example.test"],
     HDR + b"To: x@example.test\nSubject: -f\n\nbody\n"),
    ("aliases", ["-i", "root", "z@example.test"], HDR + b"To: root\nSubject: aliases\n\nbody\n"),
    ("account-by-from", ["-f", "secret@example.test", "-i", "y@example.test"],
     HDR + b"To: y@example.test\nSubject: by from\n\nbody\n"),
    ("undisclosed-generated", ["-a", "undisclosed", "-t", "-i"],
     b"To: u1@example.test\nBcc: u2@example.test\nSubject: gen\n\nbody\n"),
    ("generated-headers", ["-i", "g@example.test"], b"Subject: bare\n\nbody\n"),
    ("read-envelope-from", ["--read-envelope-from", "-t", "-i"],
     b"From: Boss <second@example.test>\nDate: Sun, 29 Nov 2026 00:00:00 +0000\n"
     b"Message-ID: <ref.1@example.test>\nTo: r@example.test\nSubject: ref\n\nbody\n"),
    ("from-substitution", ["-a", "subst", "-i", "s@example.test"],
     b"Subject: %U\nDate: Sun, 29 Nov 2026 00:00:00 +0000\nMessage-ID: <u@x.test>\n\nb\n"),
    ("auto-from", ["-a", "auto", "-i", "s@example.test"],
     b"Subject: auto\nDate: Sun, 29 Nov 2026 00:00:00 +0000\nMessage-ID: <v@x.test>\n\nb\n"),
    ("resent", ["-t", "-i"],
     HDR + b"To: orig@example.test\nResent-From: fw@example.test\nResent-To: new@example.test\n"
     b"Subject: fwd\n\nbody\n"),
]


@pytest.mark.parametrize("name,args,msg", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_same_as_msmtp(name, args, msg, setup):
    (e1, t1, l1, err1), (e2, t2, l2, err2) = run_both(setup, args, msg)
    assert e1 == 0, err1
    assert e2 == e1, err2
    assert t1 and t2
    assert t1[0] == t2[0], "the same account (server) must be chosen"
    a, b = t1[1], t2[1]
    assert a.mail_from == b.mail_from
    assert a.accepted_rcpts == b.accepted_rcpts
    assert a.authenticated == b.authenticated and a.tls == b.tls
    da, db = strip_generated(a.data), strip_generated(b.data)
    assert da == db
    # the log line: same fields, same values (mailsize only when nothing was generated)
    assert l1.keys() == l2.keys()
    for k in l1:
        if k == "mailsize" and (b"Date:" not in msg or b"Message-ID:" not in msg):
            continue
        assert l1[k] == l2[k], k


@pytest.mark.parametrize("args,msg", [
    (["-a", "nosuch", "x@example.test"], HDR + b"\nx\n"),           # unknown account: 78
    (["-t", "-i"], HDR + b"Subject: no recipients\n\nx\n"),          # no recipients: 64
])
def test_same_exit_codes(args, msg, setup):
    """Failures before anything is sent end the same way."""
    (e1, t1, _, _), (e2, t2, _, err2) = run_both(setup, args, msg)
    assert e1 != 0 and e2 == e1, err2
    assert t1 is None and t2 is None


def test_connection_refused_same_code_and_log(setup, tmp_path):
    srv = setup["servers"]["plain"]
    srv.stop()
    (e1, _, l1, _), (e2, _, l2, err2) = run_both(setup, ["-i", "x@example.test"], HDR + b"\nx\n")
    assert e1 == e2 == 75, err2
    assert l1["exitcode"] == l2["exitcode"] == "EX_TEMPFAIL"
    assert "errormsg" in l2 and l1.keys() == l2.keys()


def test_verbose_and_log_never_show_the_password(setup):
    r = subprocess.run([bluearrow_path(), "sendmail", "-C", setup["cfg"], "-v", "-f",
                        "secret@example.test", "-i", "y@example.test"],
                       input=HDR + b"\nbody\n", capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert b"AUTH PLAIN" in r.stderr and b"<redacted>" in r.stderr
    import base64
    secret = base64.b64encode(b"\0user\0password")
    for blob in (r.stderr, r.stdout, open(setup["log"], "rb").read()):
        assert b"password" not in blob.replace(b"password_", b"") and secret not in blob


@pytest.mark.parametrize("rcpts", [["reject1@example.test"],
                                   ["ok@example.test", "reject2@example.test"]])
def test_refused_recipient_same_log_line(setup, rcpts):
    """A refused recipient: the log line's smtpstatus, smtpmsg and errormsg are
    msmtp's, byte for byte (existing log tooling parses them)."""
    (e1, _, l1, _), (e2, _, l2, err2) = run_both(setup, ["-i"] + rcpts, HDR + b"\nx\n")
    # the exit code is sendmail's EX_NOUSER (67) where msmtp says EX_DATAERR (65)
    assert (e1, e2) == (65, 67), err2
    assert (l1.pop("exitcode"), l2.pop("exitcode")) == ("EX_DATAERR", "EX_NOUSER")
    assert l1 == l2
