"""End to end against real software from Debian: a private Dovecot instance
(submission with STARTTLS + AUTH on a high port, relaying to a recording
sink; LMTP delivering into a Maildir).  Delivered files are checked byte for
byte.  Needs dovecot-core, dovecot-submissiond, dovecot-lmtpd (scripts/deps).
"""
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import certs as certs_mod  # noqa: E402
from servers import SMTPServer  # noqa: E402

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
MSG = (b"From: a@x.test\r\nTo: user@mx.test\r\nDate: Sun, 29 Nov 2026 00:00:00 +0000\r\n"
       b"Message-ID: <e2e-1@x.test>\r\nSubject: e2e\r\n\r\nbody line 1\r\n.leading dot\r\n"
       b"\r\nlast line\r\n")


def bluearrow():
    p = os.path.join(os.environ.get("BA_BUILD_DIR", "build"), "bluearrow")
    if not os.access(p, os.X_OK):
        pytest.skip("bluearrow not built")
    return p


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d did not open" % port)


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory):
    if not os.access(DOVECOT, os.X_OK) or not os.path.exists(
            "/usr/lib/dovecot/submission") or not os.path.exists("/usr/lib/dovecot/lmtp"):
        pytest.skip("dovecot-core, dovecot-submissiond or dovecot-lmtpd not installed "
                    "(run scripts/deps)")
    if os.geteuid() != 0:
        pytest.skip("a private dovecot instance needs root here")
    # not under pytest's 0700 tmp: Dovecot's auth process runs as its own user
    import tempfile
    d = tempfile.mkdtemp(prefix="ba-e2e-dovecot-")
    for sub in ("run", "state", "home"):
        os.makedirs(os.path.join(d, sub))
    os.chmod(d, 0o755)
    import pwd
    dv = pwd.getpwnam("dovecot")
    os.chown(os.path.join(d, "home"), dv.pw_uid, dv.pw_gid)
    c = certs_mod.make_certs(os.path.join(d, "certs"))
    sink = SMTPServer(certs=c).start()
    ports = {"sub": free_port(), "lmtp": free_port()}
    with open(os.path.join(d, "passwd"), "w") as f:
        f.write("user:{PLAIN}password::::::\n")
    os.chmod(os.path.join(d, "passwd"), 0o644)
    conf = os.path.join(d, "dovecot.conf")
    with open(conf, "w") as f:
        f.write("""base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = submission lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <{crt}
ssl_key = <{key}
auth_mechanisms = plain login
auth_username_format = %n
disable_plaintext_auth = yes
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={d}/home/%n mail=maildir:{d}/home/%n/Maildir allow_all_users=yes
}}
hostname = mx.test
submission_relay_host = 127.0.0.1
submission_relay_port = {sink}
service submission-login {{
  inet_listener submission {{
    port = {sub}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
""".format(d=d, crt=c.crt("server"), key=c.key("server"), sink=sink.port, **ports))
    proc = subprocess.Popen([DOVECOT, "-F", "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(ports["sub"])
        wait_port(ports["lmtp"])
        yield {"dir": d, "certs": c, "sink": sink, "conf": conf, **ports}
    finally:
        proc.terminate()
        proc.wait(10)
        sink.stop()
        if not os.environ.get("BA_KEEP"):
            shutil.rmtree(d, ignore_errors=True)


def config(tmp_path, dv, **keys):
    vals = {"host": "127.0.0.1", "timeout": 10, "from": "a@x.test"}
    vals.update(keys)
    text = "account t\n" + "".join("%s %s\n" % kv for kv in vals.items()) + \
        "account default : t\n"
    p = tmp_path / "config"
    p.write_text(text)
    os.chmod(str(p), 0o600)
    return str(p)


def send(cfg, *rcpts, input=MSG, args=()):
    # -i: the test data holds lone "." lines, which end sendmail input without it
    return subprocess.run([bluearrow(), "sendmail", "-C", cfg, "-i", *args, *rcpts], input=input,
                          capture_output=True, timeout=30)


def maildir_files(dv, user="user"):
    return sorted(glob.glob(os.path.join(dv["dir"], "home", user, "Maildir", "new", "*")))


def delivered_body(path):
    """The file minus the trace headers the MDA put in front (Return-Path,
    Delivered-To, Received, each possibly folded)."""
    data = open(path, "rb").read()
    while True:
        m = re.match(rb"(Return-Path|Delivered-To|Received):[^\n]*\n(?:[ \t][^\n]*\n)*", data)
        if not m:
            return data
        data = data[m.end():]


@pytest.mark.parametrize("body", [MSG, MSG + b"smuggle\n.\r\nMAIL FROM:<x@y>\r\n\r.\r..\r\n"])
def test_lmtp_into_maildir(body, dovecot, tmp_path):
    before = set(maildir_files(dovecot))
    cfg = config(tmp_path, dovecot, port=dovecot["lmtp"], protocol="lmtp")
    r = send(cfg, "user@mx.test", input=body)
    assert r.returncode == 0, r.stderr
    new = sorted(set(maildir_files(dovecot)) - before)
    assert len(new) == 1
    # Dovecot stores LF line ends: our CRLF-normalised message, byte for byte
    want = re.sub(rb"\r\n|\r|\n", b"\n", body)
    assert delivered_body(new[0]) == want


def test_lmtp_unknown_user_refused(dovecot, tmp_path):
    cfg = config(tmp_path, dovecot, port=dovecot["lmtp"], protocol="lmtp")
    r = send(cfg, "user@mx.test", "no/such@mx.test")
    assert r.returncode in (65, 67, 75), r.stderr


@pytest.mark.parametrize("mech", ["plain", "login", "on"])
def test_submission_starttls_auth(mech, dovecot, tmp_path):
    sink = dovecot["sink"]
    n = len(sink.messages)
    cfg = config(tmp_path, dovecot, port=dovecot["sub"], tls="on", tls_starttls="on",
                 tls_trust_file=dovecot["certs"].ca, auth=mech, user="user",
                 password="password")
    r = send(cfg, "b@y.test", args=("-v",))
    assert r.returncode == 0, r.stderr
    assert b"password" not in r.stderr and b"cGFzc3dvcmQ" not in r.stderr
    sink.wait_messages(n + 1)
    txn = [t for t in sink.txns if t.data is not None][-1]
    assert txn.mail_from == "a@x.test" and txn.accepted_rcpts == ["b@y.test"]
    # Dovecot relays the message as it got it (it may prepend trace headers)
    assert txn.data.endswith(MSG)


def test_submission_wrong_password(dovecot, tmp_path):
    cfg = config(tmp_path, dovecot, port=dovecot["sub"], tls="on", tls_starttls="on",
                 tls_trust_file=dovecot["certs"].ca, auth="on", user="user",
                 password="nope")
    r = send(cfg, "b@y.test")
    assert r.returncode == 77, r.stderr


def test_submission_no_auth_in_clear(dovecot, tmp_path):
    cfg = config(tmp_path, dovecot, port=dovecot["sub"], auth="on", user="user",
                 password="password")
    r = send(cfg, "b@y.test")
    assert r.returncode == 77, r.stderr


def test_submission_untrusted_ca(dovecot, tmp_path):
    cfg = config(tmp_path, dovecot, port=dovecot["sub"], tls="on", tls_starttls="on",
                 tls_trust_file=dovecot["certs"].other_ca, auth="on", user="user",
                 password="password")
    r = send(cfg, "b@y.test")
    assert r.returncode == 69, r.stderr
