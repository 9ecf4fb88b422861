#!/usr/bin/python3
"""Play scripted SMTP dialogues (tests/proto/cases/*.dlg) against a sendmail.

    tests/proto/run.py [-v] [--sut 'msmtp'] [CASE.dlg | NUMBER ...]

Each case: a loopback server that follows the script line by line, the client
($SUT_SENDMAIL, default '$BA_BUILD_DIR/bluearrow sendmail') started with the
case's args and stdin, then the expectations checked.  The format is in
FORMAT.md.  Exit status: 0 when every case passed.
"""
import argparse
import glob
import os
import re
import shlex
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from certs import make_certs  # noqa: E402

# under valgrind (BA_VALGRIND=1, tests/integration/conftest.py) the client is 10-50 times
# slower: a TLS handshake alone can take more than 5 s, so the server waits longer
SLOW = 3 if os.environ.get("BA_VALGRIND") == "1" else 1
DEFAULT_TIMEOUT = 20 * SLOW
READ_TIMEOUT = 5 * SLOW
# a case's own "timeout:" bounds the client's whole run; memcheck adds about a second of
# start-up and exit on a loaded machine, so that much more is allowed under valgrind (the
# strict bound is checked in the normal run)
VALGRIND_START_EXIT = 1.5 if SLOW > 1 else 0.0
SENDS = ("S", "S-nocrlf", "S-repeat", "S-long", "S-trickle")


class Case:
    def __init__(self, path):
        self.path = path
        self.name = os.path.splitext(os.path.basename(path))[0]
        self.title = ""
        self.conf = []
        self.args = ""
        self.stdin = None
        self.steps = []           # (kind, value)
        self.expect_exit = None
        self.not_sent = []
        self.stderr = []
        self.data = None
        self.timeout = DEFAULT_TIMEOUT
        self.server = "script"    # or "closed"
        self.msmtp_fails = None
        self.read_timeout = READ_TIMEOUT
        self.lockstep = False
        self.allow_bare = False
        self.stderr_not = []
        self.tls_silent = False
        self.sni = None
        self._parse()

    def _parse(self):
        with open(self.path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for n, raw in enumerate(lines, 1):
            line = raw.rstrip("\r")
            if not line.strip():
                continue
            if line.startswith("#"):
                if not self.title:
                    self.title = line.lstrip("# ").strip()
                continue
            m = re.fullmatch(r"(TLS|DATA|BDAT|CLOSE|STALL)(?:\s+(\S+))?\s*", line)
            if m:
                self.steps.append((m.group(1), m.group(2) or ""))
                continue
            key, sep, val = line.partition(":")
            if not sep:
                raise ValueError("%s:%d: unknown line %r" % (self.path, n, line))
            key = key.strip()
            v = val[1:] if val.startswith(" ") else val
            vs = val.strip()
            if key == "conf":
                self.conf += [c.strip() for c in vs.split(" | ") if c.strip()]
            elif key == "args":
                self.args = vs
            elif key == "stdin":
                self.stdin = (self.stdin or "") + v + "\n"
            elif key == "stdin-file":
                with open(os.path.join(os.path.dirname(self.path), vs), "rb") as f:
                    self.stdin = f.read()
            elif key in SENDS or key in ("C", "sleep"):
                self.steps.append((key, v))
            elif key == "expect-exit":
                self.expect_exit = vs
            elif key == "expect-not-sent":
                self.not_sent.append(unescape(vs))
            elif key == "expect-stderr":
                self.stderr.append(vs)
            elif key == "expect-data":
                self.data = (self.data or b"") + v.encode() + b"\r\n"
            elif key == "expect-stderr-not":
                # bytes: compared with the raw stderr, so "\xc2\x9b" means U+009B
                self.stderr_not.append(unescape(vs))
            elif key == "expect-sni":
                self.sni = vs
            elif key == "expect-tls-silent":
                self.tls_silent = vs == "yes"
            elif key == "expect-lockstep":
                self.lockstep = vs == "yes"
            elif key == "allow-bare-lf":
                self.allow_bare = vs == "yes"
            elif key == "read-timeout":
                self.read_timeout = float(vs)
            elif key == "timeout":
                self.timeout = float(vs) + VALGRIND_START_EXIT
            elif key == "server":
                self.server = vs
            elif key == "msmtp-fails":
                self.msmtp_fails = vs or "yes"
            else:
                raise ValueError("%s:%d: unknown line %r" % (self.path, n, line))


def unescape(s):
    """\\r \\n \\t \\\\ \\xHH escapes in S: lines."""
    return re.sub(rb"\\(x[0-9a-fA-F]{2}|[rnt\\])",
                  lambda m: {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"\\": b"\\"}.get(
                      m.group(1), None) or bytes([int(m.group(1)[1:], 16)]),
                  s.encode("utf-8"))


def match(pattern, line):
    """'*' matches anything (also nothing), '\\*' a literal '*' (the SASL
    cancel line); case-insensitive like SMTP verbs."""
    rx = r"\*".join(".*".join(re.escape(p) for p in part.split("*"))
                     for part in pattern.split("\\*"))
    return re.fullmatch(rx, line, re.I | re.S) is not None


class ScriptServer:
    """Plays case.steps on the first connection; records what the client sent."""

    def __init__(self, case, certs):
        self.case = case
        self.certs = certs
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = b""       # everything the client sent (plaintext + TLS layer)
        self.received_tls = b""   # the part sent inside TLS
        self.sni = None           # server name indication of the last handshake
        self.log = []             # transcript
        self.errors = []
        self.data = None
        self.done = threading.Event()
        self.conn = None
        self.buf = b""
        self.stop = False
        if case.server == "closed":
            self.sock.close()
            self.done.set()
        else:
            self.sock.listen(4)

    def start(self):
        if self.case.server != "closed":
            threading.Thread(target=self._run, daemon=True).start()

    def _recv(self):
        d = self.conn.recv(65536)
        if d:
            self.received += d
            if self.tls:
                self.received_tls += d
            self.log.append("C%s %r" % ("~" if self.tls else ":", d[:300]))
        return d

    def _readline(self):
        while b"\n" not in self.buf:
            d = self._recv()
            if not d:
                raise EOFError("client closed the connection")
            self.buf += d
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r")

    def _send(self, data):
        self.log.append("S%s %r" % ("~" if self.tls else ":", data[:300]))
        try:
            self.conn.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            # the client gave up while we were sending: its verdict, not ours
            self.log.append("client closed while the server was sending: %s" % e)
            self.stop = True
            raise EOFError("client closed") from e

    def _run(self):
        self.tls = False
        self.sock.settimeout(self.case.timeout)
        try:
            self.conn, _ = self.sock.accept()
        except OSError as e:
            self.errors.append("no connection: %s" % e)
            self.done.set()
            return
        self.conn.settimeout(self.case.read_timeout)
        try:
            self._play()
            if not self.stop:
                self._drain()
        except (EOFError, OSError, ssl.SSLError) as e:
            if not self.stop:
                self.errors.append("at step %d: %s" % (self.step_no, e))
        finally:
            try:
                self.conn.close()
            except OSError:
                pass
            self.sock.close()
            self.done.set()

    def _play(self):
        steps = self.case.steps
        i = 0
        self.step_no = 0
        while i < len(steps):
            kind, val = steps[i]
            self.step_no = i + 1
            if kind == "S-trickle":
                delay, _, text = val.partition(" ")
                for b in unescape(text) + b"\r\n":
                    self._send(bytes([b]))
                    time.sleep(float(delay))
                i += 1
                continue
            if kind in SENDS:
                if self.case.lockstep:
                    self._check_ahead()
                out = b""
                # consecutive S lines go out in one write
                while i < len(steps) and steps[i][0] in SENDS and steps[i][0] != "S-trickle":
                    k, v = steps[i]
                    if k == "S":
                        out += unescape(v) + b"\r\n"
                    elif k == "S-nocrlf":
                        out += unescape(v)
                    elif k == "S-repeat":
                        cnt, _, text = v.partition(" ")
                        out += (unescape(text) + b"\r\n") * int(cnt)
                    elif k == "S-long":
                        cnt, _, text = v.partition(" ")
                        out += unescape(text) + b"x" * int(cnt) + b"\r\n"
                    else:
                        break
                    i += 1
                self._send(out)
                continue
            if kind == "C":
                line = self._readline().decode("utf-8", "replace")
                if not match(val, line):
                    self.errors.append("step %d: expected C: %s, got %r" % (i + 1, val, line))
                    self.stop = True     # close at once: the dialogue is off script
                    return
            elif kind == "DATA":
                self._read_data()
            elif kind == "BDAT":
                if not self._read_bdat(val):
                    return
            elif kind == "TLS":
                if self.buf:
                    self.errors.append("client sent %r after STARTTLS before the TLS handshake"
                                       % self.buf[:100])
                    self.stop = True
                    return
                ctx = self.certs.server_context(val or "server")
                try:
                    self.conn = ctx.wrap_socket(self.conn, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    self.log.append("TLS handshake failed: %s" % e)
                    if i + 1 < len(steps):   # only a final TLS step may fail
                        self.errors.append("step %d: TLS handshake failed: %s" % (i + 1, e))
                    self.stop = True
                    return
                self.tls = True
                self.sni = getattr(self.conn, "sni_name", None)
                self.conn.settimeout(self.case.read_timeout)
                self.log.append("TLS %s established" % self.conn.version())
            elif kind == "sleep":
                time.sleep(float(val))
            elif kind == "STALL":
                self._stall()
                return
            elif kind == "CLOSE":
                self.stop = True
                return
            i += 1

    def _check_ahead(self):
        """expect-lockstep: nothing may arrive before the reply is sent."""
        import select
        time.sleep(0.05)
        r, _, _ = select.select([self.conn], [], [], 0)
        pending = self.buf
        if r or (self.tls and self.conn.pending()):
            try:
                self.conn.setblocking(False)
                d = self._recv()
                self.buf += d
                pending += d
            except (BlockingIOError, ssl.SSLWantReadError):
                pass
            finally:
                self.conn.setblocking(True)
                self.conn.settimeout(self.case.read_timeout)
        if pending:
            self.errors.append("client sent %r before the reply (not lock-step)"
                               % pending[:100])

    def _read_data(self):
        lines = []
        while True:
            line = self._readline()
            if line == b".":
                break
            lines.append(line[1:] if line.startswith(b".") else line)
        self.data = b"".join(l + b"\r\n" for l in lines)

    def _read_bdat(self, want):
        """BDAT [LAST|MORE]: one "BDAT n [LAST]" command and its n octets (RFC 3030 §2),
        appended to the data; "LAST" or "MORE" requires or forbids the LAST keyword."""
        line = self._readline().decode("utf-8", "replace")
        m = re.fullmatch(r"BDAT ([0-9]+)( LAST)?", line, re.I)
        if not m or (want == "LAST" and not m.group(2)) or (want == "MORE" and m.group(2)):
            self.errors.append("step %d: expected BDAT %s, got %r"
                               % (self.step_no, want or "n", line))
            self.stop = True
            return False
        n = int(m.group(1))
        while len(self.buf) < n:
            d = self._recv()
            if not d:
                raise EOFError("client closed the connection inside a BDAT chunk")
            self.buf += d
        self.data = (self.data or b"") + self.buf[:n]
        self.buf = self.buf[n:]
        return True

    def _drain(self):
        """After the script: answer QUIT with 221 and close, anything else with
        554 (so a client that goes on does not wait forever), until EOF."""
        self.stop = True
        self.conn.settimeout(self.case.timeout)
        try:
            while not self.done.is_set():
                line = self._readline()
                if line.upper() == b"QUIT":
                    self._send(b"221 2.0.0 bye (end of script)\r\n")
                    return
                self._send(b"554 5.5.0 end of script\r\n")
        except (OSError, ssl.SSLError, EOFError):
            pass

    def _stall(self):
        """STALL: read and record, never answer, until the client closes."""
        self.stop = True
        self.conn.settimeout(self.case.timeout)
        try:
            while self._recv():
                pass
        except (OSError, ssl.SSLError):
            pass


def sut_command():
    env = os.environ.get("SUT_SENDMAIL")
    if env:
        return shlex.split(env)
    build = os.environ.get("BA_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
    return [os.path.join(build, "bluearrow"), "sendmail"]


def run_case(case, certs, sut=None, workdir=None, verbose=False):
    """Returns (ok, report text)."""
    workdir = workdir or tempfile.mkdtemp(prefix="proto-")
    srv = ScriptServer(case, certs)
    subst = {"port": str(srv.port), "host": "127.0.0.1", "ca": certs.ca,
             "certdir": certs.dir, "tmp": workdir}
    conf_path = os.path.join(workdir, case.name + ".conf")
    subst["conf"] = conf_path

    def sub(s):
        return re.sub(r"\{(\w+)\}", lambda m: subst.get(m.group(1), m.group(0)), s)
    keys = [sub(c) for c in case.conf]
    names = [k.split()[0] for k in keys]
    lines = ["account default", "host 127.0.0.1", "port %d" % srv.port]
    if "tls on" in keys and "tls_trust_file" not in names:
        lines.append("tls_trust_file " + certs.ca)
    lines += keys
    fd = os.open(conf_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    argv = (sut or sut_command()) + [sub(a) for a in shlex.split(case.args)]
    stdin = case.stdin if isinstance(case.stdin, bytes) else (case.stdin or "").encode()
    srv.start()
    t0 = time.monotonic()
    hung = False
    try:
        p = subprocess.run(argv, input=stdin, capture_output=True, timeout=case.timeout)
        rc, err_raw = p.returncode, p.stderr
    except subprocess.TimeoutExpired as e:
        hung = True
        rc, err_raw = None, e.stderr or b""
    except OSError as e:
        srv.sock.close()
        return False, "FAIL %s: cannot run %s: %s" % (case.name, argv[0], e)
    elapsed = time.monotonic() - t0
    err = err_raw.decode("utf-8", "replace")
    srv.done.wait(2)
    problems = list(srv.errors)
    if hung:
        problems.append("client did not exit within %gs (hang)" % case.timeout)
    elif rc < 0:
        problems.append("client killed by signal %d" % -rc)
    elif case.expect_exit is not None:
        want = case.expect_exit
        if want == "!0":
            if rc == 0:
                problems.append("exit 0, expected failure")
        elif want != "any" and rc != int(want):
            problems.append("exit %s, expected %s" % (rc, want))
    if case.sni is not None and (srv.sni or "none") != case.sni:
        problems.append("SNI %r, expected %s" % (srv.sni, case.sni))
    if case.tls_silent and srv.received_tls:
        problems.append("client sent %r inside TLS (it should have refused the certificate)"
                        % srv.received_tls[:80])
    for s in case.not_sent:
        if s.lower() in srv.received.lower():
            problems.append("client sent %r" % s.decode("utf-8", "replace"))
    for s in case.stderr_not:
        if s in err_raw:
            problems.append("stderr contains %r" % s)
    if not case.allow_bare:
        bad = re.search(rb"\r(?!\n)|(?<!\r)\n", srv.received)
        if bad:
            problems.append("bare CR or LF sent at offset %d" % bad.start())
    for s in case.stderr:
        if s.lower() not in err.lower():
            problems.append("stderr lacks %r" % s)
    if case.data is not None and srv.data != case.data:
        problems.append("data %r, expected %r" % (srv.data, case.data))
    ok = not problems
    known = bool(case.msmtp_fails) and os.path.basename(argv[0]) == "msmtp"
    tag = "ok  " if ok else "XFAIL" if known else "FAIL"
    if known and not ok:
        problems.append("known msmtp failure: " + case.msmtp_fails)
        ok = True
    elif known:
        tag, ok = "XPASS", False
        problems.append("msmtp passes: remove the msmtp-fails line")
    out = ["%s %s (%s) %.1fs" % (tag, case.name, case.title, elapsed)]
    if not ok or verbose:
        out += ["    " + x for x in problems]
        out.append("    argv: %s" % " ".join(argv))
        out.append("    exit: %s stderr: %s" % (rc, err.strip()[:500]))
        out += ["    " + x for x in srv.log[:60]]
    return ok, "\n".join(out)


def find_cases(names):
    allc = sorted(glob.glob(os.path.join(HERE, "cases", "*.dlg")))
    if not names:
        return allc
    out = []
    for n in names:
        if os.path.exists(n):
            out.append(n)
        else:
            out += [c for c in allc if os.path.basename(c).startswith(n)]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--sut", help="client command (default $SUT_SENDMAIL or bluearrow sendmail)")
    ap.add_argument("cases", nargs="*")
    a = ap.parse_args()
    sut = shlex.split(a.sut) if a.sut else None
    with tempfile.TemporaryDirectory(prefix="proto-") as tmp:
        certs = make_certs(os.path.join(tmp, "certs"))
        failed = 0
        for path in find_cases(a.cases):
            ok, rep = run_case(Case(path), certs, sut, tmp, a.verbose)
            print(rep, flush=True)
            failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
