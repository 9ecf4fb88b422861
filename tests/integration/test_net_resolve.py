"""Name resolution has a deadline (core/net.c resolve_deadline), and a host's
addresses are tried as RFC 8305 (Happy Eyeballs) says (core/net.c connect_tcp).

The C library's resolver waits resolv.conf's timeout per server and attempt
and cannot be interrupted; bluearrow resolves in a thread and gives up at the
account's `timeout`.  Each test runs the client in a private network namespace
whose /etc/resolv.conf (ip-netns(8): /etc/netns/NAME/resolv.conf) names a DNS
server on the namespace's own loopback, with a 30 s resolver timeout:

  blackhole  receives the query and never answers: the client must fail with
             EX_TEMPFAIL, naming the host, after about its timeout (2 s), not 30 s;
  slow       answers A 127.0.0.1 after 1.5 s: the client (timeout 5 s) must wait
             for it and deliver to an SMTP server in the same namespace.

Happy Eyeballs: the namespace's /etc/hosts gives mail.he.test as ::1 (tried
first, RFC 6724) and 127.0.0.1; on ::1 a listener with a full backlog drops
the SYN, on 127.0.0.1 the SMTP server answers: the client must deliver after
about 250 ms, not after its connect timeout.

The DNS responder is a few lines of Python (no real server can be told to
answer late or never); the SMTP server is the tests' aiosmtpd server.  Needs
root and ip(8); skipped otherwise.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from conftest import bluearrow_path

EX_TEMPFAIL = 75
PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                reason="needs root and ip(8) for a network namespace")

# A DNS responder on 127.0.0.1:53 of the namespace.  argv: mode (blackhole|slow),
# delay seconds, log file.  Logs each query name; answers A 127.0.0.1 (slow).
DNS = r'''
import socket, struct, sys, threading, time
mode, delay, log = sys.argv[1], float(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
open(log, "a").write("ready\n")
def qname(p):
    i, labels = 12, []
    while p[i]:
        labels.append(p[i + 1:i + 1 + p[i]].decode()); i += 1 + p[i]
    return ".".join(labels), i + 5
def answer(p, a):
    name, end = qname(p)
    qtype = struct.unpack("!H", p[end - 4:end - 2])[0]
    time.sleep(delay)
    flags = 0x8180
    hdr = p[:2] + struct.pack("!HHHHH", flags, 1, 1 if qtype == 1 else 0, 0, 0)
    rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
    s.sendto(hdr + p[12:end] + (rr if qtype == 1 else b""), a)
while True:
    p, a = s.recvfrom(512)
    open(log, "a").write("query %s\n" % qname(p)[0])
    if mode == "slow":
        threading.Thread(target=answer, args=(p, a), daemon=True).start()
'''


@pytest.fixture
def netns(tmp_path):
    """A network namespace with loopback up and its own resolv.conf (30 s resolver
    timeout, one attempt).  Yields run(argv, **kw) -> Popen inside it."""
    name = "ba-dns-%s" % uuid.uuid4().hex[:8]
    etc = "/etc/netns/%s" % name
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:  # e.g. a container without CAP_SYS_ADMIN
        pytest.skip("cannot create a network namespace: " + made.stderr.strip())
    procs = []
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        os.makedirs(etc)
        with open(os.path.join(etc, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:30 attempts:1\n")

        def run(argv, **kw):
            p = subprocess.Popen(["ip", "netns", "exec", name] + argv, **kw)
            procs.append(p)
            return p
        run.etc = etc
        yield run
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(etc, ignore_errors=True)
        subprocess.run(["ip", "netns", "delete", name])


def start_dns(netns, tmp_path, mode, delay=0.0):
    log = tmp_path / "dns.log"
    netns([PY, "-c", DNS, mode, str(delay), str(log)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if log.exists() and "ready" in log.read_text():
            return log
        time.sleep(0.05)
    raise RuntimeError("the DNS responder did not start")


def start_smtp(netns):
    """The tests' SMTP server inside the namespace; returns its port."""
    p = netns([PY, "-u", "-m", "servers", "smtp"], cwd=HERE, stdout=subprocess.PIPE,
              stderr=subprocess.DEVNULL)
    line = p.stdout.readline().decode()
    assert line.startswith("listening on 127.0.0.1:"), line
    return int(line.split(":")[1].split()[0])


def config(tmp_path, host, port, timeout):
    path = tmp_path / "config"
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("account default\nhost %s\nport %d\ntls off\nauth off\nfrom a@x.test\n"
                "timeout %d\n" % (host, port, timeout))
    return str(path)


MSG = b"From: a@x.test\nTo: b@y.test\nSubject: dns\n\nbody\n"


def send(netns, cfg, *flags):
    t0 = time.monotonic()
    p = netns([bluearrow_path(), "sendmail", "-C", cfg] + list(flags) + ["b@y.test"],
              stdin=subprocess.PIPE,
              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(MSG, timeout=60)
    return p.returncode, err.decode(errors="replace"), time.monotonic() - t0


def test_unanswered_query_times_out(netns, tmp_path):
    log = start_dns(netns, tmp_path, "blackhole")
    # port 25 of the namespace's loopback: nothing listens, but it is never reached
    rc, err, took = send(netns, config(tmp_path, "mail.blackhole.test", 25, 2))
    assert rc == EX_TEMPFAIL, err
    assert "cannot resolve 'mail.blackhole.test': no answer within 2 s" in err
    # the query did go to the DNS server, and the client did not wait for the
    # resolver's own 30 s
    assert "query mail.blackhole.test" in log.read_text()
    assert 1.5 < took < 15, took


def test_slow_answer_within_timeout_is_used(netns, tmp_path):
    log = start_dns(netns, tmp_path, "slow", delay=1.5)
    port = start_smtp(netns)
    rc, err, took = send(netns, config(tmp_path, "mail.slow.test", port, 5))
    assert rc == 0, err
    assert "query mail.slow.test" in log.read_text()
    assert took >= 1.4, took


def test_hosts_file_names_need_no_dns(netns, tmp_path):
    # "localhost" comes from /etc/hosts through the same resolver thread; the
    # black hole sees no query for it
    log = start_dns(netns, tmp_path, "blackhole")
    port = start_smtp(netns)
    rc, err, took = send(netns, config(tmp_path, "localhost", port, 2))
    assert rc == 0, err
    assert "query localhost" not in log.read_text()


# Listens on [::1]:port with a full backlog, so a further SYN is dropped (no RST).
BLOCKER = r'''
import socket, sys, time
port = int(sys.argv[1])
l = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("::1", port))
l.listen(0)
fill = []
for _ in range(4):
    c = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    c.setblocking(False)
    c.connect_ex(("::1", port))
    fill.append(c)
time.sleep(0.2)
print("ready", flush=True)
time.sleep(3600)
'''


def test_happy_eyeballs_second_address_wins(netns, tmp_path):
    with open(os.path.join(netns.etc, "hosts"), "w") as f:
        f.write("127.0.0.1 localhost\n::1 mail.he.test\n127.0.0.1 mail.he.test\n")
    port = start_smtp(netns)
    b = netns([PY, "-c", BLOCKER, str(port)], stdout=subprocess.PIPE)
    assert b.stdout.readline() == b"ready\n"
    rc, err, took = send(netns, config(tmp_path, "mail.he.test", port, 5), "-v")
    assert rc == 0, err
    # ::1 was tried first and given up on for 127.0.0.1 well before the timeout
    v6 = err.find("connecting to ::1 port %d" % port)
    v4 = err.find("connecting to 127.0.0.1 port %d" % port)
    assert 0 <= v6 < v4, err
    assert took < 3, took
