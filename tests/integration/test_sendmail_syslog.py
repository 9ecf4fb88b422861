"""`syslog on|FACILITY`: the msmtp log line goes to syslog with the facility and LOG_INFO on
success, LOG_ERR on failure; the same fields as msmtp's own syslog line.  The program runs in a
private mount namespace whose /dev is a directory holding our datagram socket as /dev/log."""
import os
import re
import shutil
import socket
import subprocess

import pytest

from conftest import bluearrow_path

LOG_USER, LOG_MAIL, LOG_LOCAL3 = 8, 16, 19 * 8
LOG_ERR, LOG_INFO = 3, 6


def run_with_devlog(tmp_path, argv, data):
    dev = tmp_path / "dev"
    dev.mkdir(exist_ok=True)
    (dev / "null").touch()
    path = str(dev / "log")
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    cmd = ("mount --bind /dev/null %s/null && mount --bind %s /dev && exec \"$@\"" % (dev, dev))
    r = subprocess.run(["unshare", "-m", "sh", "-c", cmd, "sh"] + argv, input=data,
                       capture_output=True, timeout=30)
    try:
        msg = s.recv(8192).decode()
    except socket.timeout:
        msg = None
    s.close()
    return r, msg


@pytest.fixture
def can_unshare(tmp_path):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a private /dev/log")
    r = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if r.returncode != 0:
        pytest.skip("unshare -m not permitted here")


def parse(msg):
    m = re.match(r"<(\d+)>.*?(?:bluearrow|msmtp)(?:\[\d+\])?: (.*)$", msg)
    assert m, msg
    fields = dict(f.split("=", 1) for f in re.findall(r"(\w+=(?:'[^']*'|\S+))", m.group(2)))
    return int(m.group(1)), fields


@pytest.mark.parametrize("value,facility", [("on", LOG_USER), ("LOG_MAIL", LOG_MAIL),
                                            ("LOG_LOCAL3", LOG_LOCAL3)])
def test_syslog_like_msmtp(value, facility, can_unshare, smtp_server, write_config, tmp_path):
    srv = smtp_server()
    cfg = write_config(srv, from_="me@example.test", syslog=value)
    data = b"Subject: x\nDate: Sun, 29 Nov 2026 00:00:00 +0000\nMessage-ID: <s@x.test>\n\nb\n"
    r1, m1 = run_with_devlog(tmp_path, [bluearrow_path(), "sendmail", "-C", cfg, "-i",
                                        "a@example.test"], data)
    assert r1.returncode == 0, r1.stderr
    assert m1, "nothing was sent to /dev/log"
    pri, f1 = parse(m1)
    assert pri == facility | LOG_INFO
    r2, m2 = run_with_devlog(tmp_path, ["msmtp", "-C", cfg, "-i", "a@example.test"], data)
    assert r2.returncode == 0 and m2
    pri2, f2 = parse(m2)
    assert pri2 == pri
    assert f1 == f2


def test_syslog_failure_is_log_err(can_unshare, smtp_server, write_config, tmp_path):
    srv = smtp_server()
    cfg = write_config(srv, from_="me@example.test", syslog="LOG_MAIL", password=None)
    r, msg = run_with_devlog(tmp_path, [bluearrow_path(), "sendmail", "-C", cfg, "-i",
                                        "reject-me@example.test"], b"Subject: x\n\nb\n")
    assert r.returncode == 67
    pri, f = parse(msg)
    assert pri == LOG_MAIL | LOG_ERR
    assert f["exitcode"] == "EX_NOUSER" and "errormsg" in f
