"""A small test internet in network namespaces, for direct (MX) delivery.

    lab = Lab(certs=make_certs(dir))       # root and ip(8) needed: netlab.available()
    lab.zone("pref.test", '''
        @      MX 10 mx-down
        @      MX 20 mx-a
        mx-down A 192.0.2.20
        mx-a   A 192.0.2.11
    ''')                                   # relative names are in the zone; SOA/NS added
    lab.zone("sec.test", "...", signed=True)          # DNSSEC-signed; lab.anchor("sec.test")
    lab.zone("bogus.test", "...", signed=True, corrupt="MX")  # a signature that fails
    lab.host("down", "192.0.2.20")         # an address that refuses port 25
    a = lab.smtp("192.0.2.11", hostname="mx-a.pref.test")   # servers.SMTPServer on :25
    lab.start()                            # authoritative DNS + validating resolver
    r = lab.run([bluearrow, "sendmail", ...], input=b"...")  # in the client namespace
    lab.close()                            # every process, namespace and file goes

Topology: a hub namespace holding a bridge; every host (the client, the
authoritative DNS server at 192.0.2.53, each SMTP server) is a namespace of
its own with one veth pair into the bridge, 192.0.2.0/24 (TEST-NET-1; no
other route, so nothing leaves the lab).  The client namespace runs a
validating resolver (Unbound) on its loopback, named in its resolv.conf
(/etc/netns/NAME/resolv.conf, which `ip netns exec` mounts over
/etc/resolv.conf); so bluearrow trusts its AD bit, as Postfix does with
smtp_dns_support_level = dnssec.  The resolver reaches the zones through
stub-zone entries pointing at NSD; a zone listed with servfail=True is
stubbed to the NSD address but not served there: NSD answers REFUSED and
the resolver SERVFAIL.  Signed zones are signed with ldns-signzone (one
ECDSA P-256 key each); their DNSKEY is the resolver's trust anchor and is
written to lab.anchor(zone) for `dnssec_trust_anchor`.

NSD and Unbound are Debian's binaries, not installed: `apt-get download`
and `dpkg-deb -x` into $BA_CACHE_DIR (else ~/.cache/bluearrow) as
scripts/smtp-sink does, because their packages start system services and
may rewrite the machine's resolv.conf.  Their library dependencies are in
scripts/deps.

SMTP servers are the suite's own (servers.SMTPServer, RawServer): the test
process makes the listening socket inside the server's namespace (setns on
this thread, then back) and hands it to srv.start(sock=...), so the servers
record as everywhere else (srv.txns, srv.conns).
"""
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CLONE_NEWNET = 0x40000000
NET = "192.0.2."
DNS_ADDR = NET + "53"
CLIENT_ADDR = NET + "2"
BLACKHOLE_ADDR = NET + "254"   # a DNS server that reads queries and never answers
_libc = ctypes.CDLL(None, use_errno=True)


def _cache():
    return os.environ.get("BA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "bluearrow")


def unpacked(pkg, binary):
    """Path of binary (e.g. usr/sbin/nsd) from Debian package pkg, downloaded and
    unpacked into the cache on first use (never installed)."""
    root = os.path.join(_cache(), "deb-" + pkg)
    path = os.path.join(root, binary)
    if os.access(path, os.X_OK):
        return path
    os.makedirs(_cache(), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=pkg + ".", dir=_cache())
    try:
        r = subprocess.run(["apt-get", "download", pkg], cwd=tmp, capture_output=True,
                           text=True)
        debs = [f for f in os.listdir(tmp) if f.endswith(".deb")]
        if r.returncode != 0 or not debs:
            raise RuntimeError("'apt-get download %s' failed: %s" % (pkg, r.stderr.strip()))
        subprocess.run(["dpkg-deb", "-x", os.path.join(tmp, debs[0]), os.path.join(tmp, "root")],
                       check=True)
        shutil.rmtree(root, ignore_errors=True)
        os.rename(os.path.join(tmp, "root"), root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def available():
    """None when a lab can be built here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if not shutil.which("ip"):
        return "needs ip(8) (iproute2)"
    for t in ("ldns-keygen", "ldns-signzone"):
        if not shutil.which(t):
            return "needs %s (ldnsutils, scripts/deps)" % t
    name = "ba-probe-%s" % uuid.uuid4().hex[:6]
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        return "cannot create a network namespace: " + r.stderr.strip()
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    return None


def _ip(*args):
    subprocess.run(["ip"] + list(args), check=True, capture_output=True)


class _InNetns:
    """with _InNetns(name): this thread is in namespace name (sockets made here stay there)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open("/var/run/netns/" + self.name, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns " + self.name)
        finally:
            os.close(fd)

    def __exit__(self, *exc):
        try:
            if _libc.setns(self.back, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(self.back)


class Lab:
    def __init__(self, tmpdir=None, certs=None):
        # a directory of its own, removed by close(): pytest's numbered directories are
        # pruned by other pytest runs on the machine, also while this one uses them
        self.dir = tempfile.mkdtemp(prefix="ba-netlab-", dir=tmpdir)
        self.certs = certs
        self.id = uuid.uuid4().hex[:6]
        self.hub = "ba%s-hub" % self.id
        self.client = "ba%s-client" % self.id
        self.etc = "/etc/netns/" + self.client
        self.etcs = [self.etc]
        self.namespaces = []
        self.hosts = {}          # address -> namespace
        self.zones = {}          # name -> (text, signed, corrupt)
        self.servfail = []
        self.blackhole = []
        self.anchors = {}
        self.procs = []
        self.servers = []
        self.started = False
        self._n = 0
        try:
            self._netns(self.hub)
            _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.hub, "link", "set", "br0", "up")
            self._attach(self.client, [CLIENT_ADDR])
            self._attach("ba%s-dns" % self.id, [DNS_ADDR, BLACKHOLE_ADDR])
        except BaseException:
            self.close()
            raise

    # -- topology -------------------------------------------------------------
    def _netns(self, name):
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _attach(self, ns, addrs):
        if ns not in self.namespaces:
            self._netns(ns)
        self._n += 1
        port = "v%d" % self._n
        _ip("-n", self.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", ns)
        _ip("-n", self.hub, "link", "set", port, "master", "br0", "up")
        for a in addrs:
            _ip("-n", ns, "addr", "add", a + "/24", "dev", "eth0")
            self.hosts[a] = ns
        _ip("-n", ns, "link", "set", "eth0", "up")

    def host(self, name, *addrs):
        """A namespace of its own with addrs (nothing listens: port 25 refuses)."""
        ns = "ba%s-%s" % (self.id, name)
        self._attach(ns, list(addrs))
        return ns

    def client_ns(self, name, addr, resolver):
        """Another client namespace at addr whose resolv.conf names resolver (e.g.
        DNS_ADDR: NSD itself, which answers for its zones; not on loopback, so its answers
        are indeterminate, and with a trust anchor libunbound validates them itself).
        Returns its name, for run(..., ns=)."""
        ns = self.host(name, addr)
        etc = "/etc/netns/" + ns
        os.makedirs(etc, exist_ok=True)
        self.etcs.append(etc)
        with open(os.path.join(etc, "resolv.conf"), "w") as f:
            f.write("nameserver %s\noptions timeout:2 attempts:2\n" % resolver)
        return ns

    def smtp(self, addr, cls=None, port=25, **opts):
        """A started recording server (servers.SMTPServer unless cls, e.g. RawServer) on
        addr:port, addr in a namespace of its own (made when new).  opts go to cls."""
        from servers import SMTPServer
        cls = cls or SMTPServer
        if addr not in self.hosts:
            self.host("h" + addr.split(".")[-1], addr)
        srv = cls(self.certs, host=addr, **opts)
        with _InNetns(self.hosts[addr]):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((addr, port))
        if hasattr(srv, "_accept_loop"):
            srv.start(sock=sock)
        else:
            sock.listen(16)
            sock.setblocking(False)
            srv.start(sock=sock)
        self.servers.append(srv)
        return srv

    # -- DNS -----------------------------------------------------------------
    def zone(self, name, records, signed=False, corrupt=None):
        """A zone served by the lab's NSD.  records: zone-file lines relative to the
        zone (SOA and NS are added).  signed: DNSSEC-signed, its key the resolver's
        trust anchor.  corrupt: a record type whose signature is spoiled (bogus)."""
        self.zones[name] = (records, signed, corrupt)

    def zone_servfail(self, name):
        """A zone the resolver asks NSD for but NSD does not serve: SERVFAIL."""
        self.servfail.append(name)

    def zone_blackhole(self, name):
        """A zone whose server never answers (an address nobody has): the resolver keeps
        trying, so the client's deadline decides."""
        self.blackhole.append(name)

    def anchor(self, zone):
        """The trust-anchor file (DNSKEY) of a signed zone."""
        return self.anchors[zone]

    def _write_zone(self, name, records, signed, corrupt):
        zdir = os.path.join(self.dir, "zones")
        os.makedirs(zdir, exist_ok=True)
        path = os.path.join(zdir, name + ".zone")
        body = ["$ORIGIN %s." % name, "$TTL 60",
                "@ SOA ns.%s. hostmaster.%s. 1 3600 600 86400 60" % (name, name),
                "@ NS ns.%s." % name, "ns A %s" % DNS_ADDR]
        body += [line.strip() for line in records.strip().splitlines() if line.strip()]
        with open(path, "w") as f:
            f.write("\n".join(body) + "\n")
        if not signed:
            return path
        r = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", name], cwd=zdir,
                           capture_output=True, text=True, check=True)
        base = os.path.join(zdir, r.stdout.strip())
        subprocess.run(["ldns-signzone", "-e", "20500101000000", path, base], check=True,
                       capture_output=True)
        anchor = os.path.join(self.dir, name + ".anchor")
        shutil.copy(base + ".key", anchor)
        self.anchors[name] = anchor
        signed_path = path + ".signed"
        if corrupt:
            lines = open(signed_path).read().splitlines()
            for i, line in enumerate(lines):
                f = line.split()
                if len(f) > 5 and f[3] == "RRSIG" and f[4] == corrupt:
                    sig = f[-1]
                    f[-1] = ("B" if sig[0] != "B" else "C") + sig[1:]
                    lines[i] = "\t".join(f)
            with open(signed_path, "w") as fh:
                fh.write("\n".join(lines) + "\n")
        return signed_path

    def start(self):
        """Starts NSD (authoritative, 192.0.2.53) and Unbound (the client's loopback)."""
        nsd = unpacked("nsd", "usr/sbin/nsd")
        unbound = unpacked("unbound", "usr/sbin/unbound")
        d = self.dir
        conf = ["server:", "  ip-address: %s" % DNS_ADDR, "  port: 53", '  username: ""',
                '  chroot: ""', "  zonesdir: %s/zones" % d, '  database: ""',
                "  zonelistfile: %s/nsd.zonelist" % d, "  xfrdfile: %s/nsd.xfrd" % d,
                "  pidfile: %s/nsd.pid" % d, "  logfile: %s/nsd.log" % d,
                "  server-count: 1", "  verbosity: 1", "remote-control:",
                "  control-enable: no"]
        for name, (records, signed, corrupt) in self.zones.items():
            path = self._write_zone(name, records, signed, corrupt)
            conf += ["zone:", "  name: %s" % name, "  zonefile: %s" % path]
        with open(os.path.join(d, "nsd.conf"), "w") as f:
            f.write("\n".join(conf) + "\n")
        if self.blackhole:
            # a host that has the address and swallows every query: no ICMP error and no
            # failed ARP that would let the resolver give up early, so the client's own
            # deadline is what ends the wait
            self._spawn("ba%s-dns" % self.id, ["/usr/bin/python3", "-c",
                        "import socket\n"
                        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                        "s.bind((%r, 53))\n"
                        "while True:\n    s.recv(4096)\n" % BLACKHOLE_ADDR], "blackhole")
        self._spawn("ba%s-dns" % self.id, [nsd, "-d", "-c", os.path.join(d, "nsd.conf")],
                    "nsd")
        uconf = ["server:", "  interface: 127.0.0.1", "  port: 53", '  username: ""',
                 '  chroot: ""', "  directory: %s" % d, "  pidfile: %s/unbound.pid" % d,
                 "  use-syslog: no", "  logfile: %s/unbound.log" % d, "  verbosity: 1",
                 "  val-log-level: 2", "  do-ip6: no", "  num-threads: 1",
                 "  so-reuseport: no", "  outgoing-range: 32", '  module-config: "validator iterator"',
                 "  qname-minimisation: no", "  harden-referral-path: no",
                 "  access-control: 127.0.0.0/8 allow", '  local-zone: "test." nodefault',
                 # tests change nothing between runs, but a failed server is not remembered
                 "  infra-host-ttl: 1", "  cache-max-negative-ttl: 1"]
        for z, a in self.anchors.items():
            uconf.append("  trust-anchor-file: %s" % a)
        for z in list(self.zones) + self.servfail:
            uconf += ["stub-zone:", '  name: "%s"' % z, "  stub-addr: %s" % DNS_ADDR]
        for z in self.blackhole:
            uconf += ["stub-zone:", '  name: "%s"' % z, "  stub-addr: %s" % BLACKHOLE_ADDR]
        with open(os.path.join(d, "unbound.conf"), "w") as f:
            f.write("\n".join(uconf) + "\n")
        os.makedirs(self.etc, exist_ok=True)
        with open(os.path.join(self.etc, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:2 attempts:2 trust-ad\n")
        self._spawn(self.client, [unbound, "-d", "-c", os.path.join(d, "unbound.conf")],
                    "unbound")
        self._wait_port(self.client, "127.0.0.1", 53, "unbound")
        self._wait_port("ba%s-dns" % self.id, DNS_ADDR, 53, "nsd")
        self.started = True

    def _spawn(self, ns, argv, name):
        log = open(os.path.join(self.dir, name + ".out"), "w")
        p = subprocess.Popen(["ip", "netns", "exec", ns] + argv, stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL)
        log.close()
        p.lab_name = name
        self.procs.append(p)
        return p

    def _wait_port(self, ns, addr, port, what):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with _InNetns(ns):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.settimeout(0.5)
                s.connect((addr, port))
                return
            except OSError:
                time.sleep(0.05)
            finally:
                s.close()
        raise RuntimeError("%s did not start: %s" % (what, self.log(what)))

    def log(self, what):
        text = ""
        for f in (what + ".out", what + ".log"):
            p = os.path.join(self.dir, f)
            if os.path.exists(p):
                text += open(p, errors="replace").read()[-4000:]
        return text

    # -- the client ----------------------------------------------------------
    def run(self, argv, input=b"", timeout=60, env=None, ns=None):
        """argv in the client namespace (its resolv.conf names the lab's resolver), or in
        ns (client_ns())."""
        e = dict(os.environ)
        e.update(env or {})
        return subprocess.run(["ip", "netns", "exec", ns or self.client] + list(argv),
                              input=input, capture_output=True, timeout=timeout, env=e)

    def connections(self):
        """How many connections each server saw: {address: n}."""
        return {s.host: len(s.conns) for s in self.servers}

    def close(self):
        for s in self.servers:
            try:
                s.stop()
            except Exception:
                pass
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for etc in self.etcs:
            shutil.rmtree(etc, ignore_errors=True)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        self.namespaces = []
        shutil.rmtree(self.dir, ignore_errors=True)


def skip_unless_available():
    why = available()
    if why:
        pytest.skip("NO NETWORK LAB: " + why)


MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """Postfix as the reference MTA for direct delivery, in the lab's client namespace:
    Debian's package unpacked (never installed), a private config, queue and log under
    dir, its master in the foreground, `smtp_dns_support_level = dnssec` and
    `smtp_tls_security_level = dane`, no relayhost.  send(rcpts) injects a message with
    its sendmail; fates(rcpts) waits for each recipient's status= in the log
    ("sent", "bounced", "deferred")."""

    def __init__(self, lab, directory=None):
        import grp
        import pwd
        self.lab = lab
        # Postfix's daemons run as its mail_owner: the queue must be reachable for it, which
        # pytest's private (0700) temporary directories are not; so a directory of its own
        # (directory: where, default the system's temporary directory)
        self.dir = tempfile.mkdtemp(prefix="ba-postfix-", dir=directory)
        os.chmod(self.dir, 0o755)
        self.root = os.path.dirname(os.path.dirname(os.path.dirname(
            unpacked("postfix", "usr/sbin/postfix"))))
        lib = os.path.join(self.root, "usr/lib/postfix")
        try:
            owner = pwd.getpwnam("postfix").pw_name
        except KeyError:
            owner = "nobody"
        try:
            group = grp.getgrnam("postdrop").gr_name
        except KeyError:
            group = "mail"
        etc, spool = os.path.join(self.dir, "etc"), os.path.join(self.dir, "spool")
        os.makedirs(etc, exist_ok=True)
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        uid, gid = pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
        os.chown(os.path.join(self.dir, "data"), uid, -1)
        for sub, mode, o, g in [("active", 0o700, uid, -1), ("bounce", 0o700, uid, -1),
                                ("corrupt", 0o700, uid, -1), ("defer", 0o700, uid, -1),
                                ("deferred", 0o700, uid, -1), ("flush", 0o700, uid, -1),
                                ("hold", 0o700, uid, -1), ("incoming", 0o700, uid, -1),
                                ("private", 0o700, uid, -1), ("saved", 0o700, uid, -1),
                                ("trace", 0o700, uid, -1), ("maildrop", 0o730, uid, gid),
                                ("public", 0o710, uid, gid), ("pid", 0o755, 0, -1)]:
            p = os.path.join(spool, sub)
            os.makedirs(p, exist_ok=True)
            os.chown(p, o, g)
            os.chmod(p, mode)
        self.log = os.path.join(self.dir, "maillog")
        open(self.log, "w").close()
        os.chown(self.log, uid, -1)
        main = {
            "compatibility_level": "3.6",
            "queue_directory": spool,
            "data_directory": os.path.join(self.dir, "data"),
            "daemon_directory": os.path.join(lib, "sbin"),
            "command_directory": os.path.join(self.root, "usr/sbin"),
            "shlib_directory": lib,
            "meta_directory": etc,
            "mail_owner": owner,
            "setgid_group": group,
            "import_environment": "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C "
                                  "LD_LIBRARY_PATH=" + lib,
            "myhostname": "client.lab.test",
            "mydomain": "lab.test",
            "myorigin": "lab.test",
            "mydestination": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "relayhost": "",
            "smtp_dns_support_level": "dnssec",
            "smtp_tls_security_level": "dane",
            "dnssec_probe": "",
            "maillog_file": self.log,
            "maillog_file_prefixes": self.dir,
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "smtp_connect_timeout": "5s",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "smtputf8_enable": "no",
            "notify_classes": "",
        }
        with open(os.path.join(etc, "main.cf"), "w") as f:
            f.write("".join("%s = %s\n" % kv for kv in main.items()))
        with open(os.path.join(etc, "master.cf"), "w") as f:
            f.write(MASTER_CF)
        open(os.path.join(etc, "dynamicmaps.cf"), "w").close()
        self.etc = etc
        self.env = {"MAIL_CONFIG": etc, "LD_LIBRARY_PATH": lib}
        # in the foreground (as `postfix start-fg`), its own process group: close() ends the
        # master and every daemon it started
        out = open(os.path.join(self.dir, "master.out"), "w")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.client, "env", "MAIL_CONFIG=" + etc,
             "LD_LIBRARY_PATH=" + lib, os.path.join(lib, "sbin", "master"), "-c", etc, "-s"],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(os.path.join(spool, "public", "pickup")):
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not os.path.exists(os.path.join(spool, "public", "pickup")):
            err = "exit %s, %s: %s" % (self.proc.poll(), self.dir, open(os.path.join(self.dir, "master.out")).read() + open(self.log).read())
            raise RuntimeError("postfix did not start: " + err)

    def send(self, rcpts, msg):
        r = self.lab.run([os.path.join(self.root, "usr/sbin/sendmail"), "-C", self.etc,
                          "-f", "a@sender.test", "--"] + list(rcpts), input=msg, env=self.env)
        assert r.returncode == 0, r.stderr

    def fates(self, rcpts, timeout=20):
        """{rcpt: "sent" | "bounced" | "deferred"}: the first status of each in the log."""
        import re
        deadline = time.monotonic() + timeout
        got = {}
        while time.monotonic() < deadline and len(got) < len(rcpts):
            text = open(self.log, errors="replace").read()
            for rc in rcpts:
                m = re.search(r"to=<%s>,.* status=(\w+)" % re.escape(rc), text)
                if m and rc not in got:
                    got[rc] = m.group(1)
            time.sleep(0.1)
        return got

    def close(self):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.2)  # the daemons leave after the master
        shutil.rmtree(self.dir, ignore_errors=True)


def postfix_for_one_test(lab, slow):
    """The body of a per-test pytest fixture: a Postfix for one test only (left running, it
    would retry its deferred recipients while later tests count connections); skipped
    under valgrind (slow) and, loudly, when its package cannot be unpacked."""
    if slow:
        pytest.skip("the Postfix reference runs in the normal pass only (not under valgrind)")
    try:
        pf = Postfix(lab)
    except Exception as e:  # noqa: BLE001 - a missing package must not hide the other cases
        pytest.skip("NO POSTFIX REFERENCE: %s" % e)
    yield pf
    pf.close()


def assert_postfix_fates(lab, postfix, cases, msg, delivered):
    """Sends msg through Postfix to every case's recipient and checks each fate: cases are
    (name, rcpt, "sent" | "bounced" | "deferred", server address or None); a sent one must
    have reached that server (delivered(server, rcpt))."""
    rcpts = [c[1] for c in cases]
    postfix.send(rcpts, msg)
    fates = postfix.fates(rcpts)
    by_addr = {s.host: s for s in lab.servers}
    for name, rcpt, want, server in cases:
        assert fates.get(rcpt) == want, "%s: Postfix said %s\n%s" % (
            name, fates.get(rcpt), open(postfix.log).read()[-3000:])
        if want == "sent":
            assert delivered(by_addr[server], rcpt), name
