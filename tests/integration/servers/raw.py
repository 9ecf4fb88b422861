"""A threaded ESMTP/LMTP server with its own line parser: what aiosmtpd lacks.

    srv = RawServer(certs, chunking=True, binarymime=True).start()   # BDAT
    srv = RawServer(certs, lmtp=True, lmtp_fail={"c@x.test": "452 4.2.2 full"}).start()

Extensions: CHUNKING/BDAT and BINARYMIME (RFC 3030), LMTP (RFC 2033: LHLO, one
reply per accepted recipient after DATA or BDAT LAST), STARTTLS, implicit TLS,
AUTH PLAIN/LOGIN, SIZE, DSN, 8BITMIME, SMTPUTF8, PIPELINING.  Scriptable:
replies={"MAIL": "451 4.3.0 no"} forces the reply to a verb ("DATA" is the
reply to the DATA command, "DOT" the one after the data, "GREETING" the
greeting); subclasses override cmd_<VERB>() (see faults.py).

Recording is the same as SMTPServer's (record.py): srv.conns, srv.messages,
srv.wait_txn(), conn.chunks/groups()/bare_cr_lf()/pipelining_violations.
"""
import base64
import os
import socket
import ssl
import threading

from .record import AuthAttempt, Conn, Rcpt, Results, Txn
from .smtp import DEFAULT_USERS, default_rcpt_rule

BARRIERS = ("EHLO", "HELO", "LHLO", "STARTTLS", "AUTH", "DATA", "VRFY", "EXPN", "NOOP",
            "QUIT", "TURN")


class Closed(Exception):
    pass


class Session:
    """One connection: buffered reads that remember when each byte arrived
    (for the pipelining check), recorded writes, optional TLS upgrade."""

    def __init__(self, server, sock, peer):
        self.srv = server
        self.sock = sock
        self.conn = Conn(peer)
        self.tls = False
        self.buf = b""
        self.arrivals = []     # (bytes received so far at end of a recv, replies sent then)
        self.consumed = 0
        self.received = 0
        self.replies = 0       # final reply lines sent
        self.turns = []        # (verb, replies sent after handling it)
        self.helo = None
        self.txn = None
        self.user = None
        self.body_type = None

    # -- I/O -------------------------------------------------------------------
    def recv(self):
        try:
            d = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError) as e:
            raise Closed(str(e))
        except socket.timeout:
            raise Closed("timeout")
        if not d:
            raise Closed("eof")
        self.conn.add("C", self.tls, d)
        self.received += len(d)
        self.arrivals.append((self.received, self.replies))
        self.buf += d
        return d

    def _arrival_replies(self, end_offset):
        for total, replies in self.arrivals:
            if total >= end_offset:
                return replies
        return self.replies

    def readline(self, limit=65536):
        while b"\n" not in self.buf:
            if len(self.buf) > limit:
                raise Closed("line too long")
            self.recv()
        line, _, self.buf = self.buf.partition(b"\n")
        self.consumed += len(line) + 1
        return line.rstrip(b"\r")

    def read_exact(self, n):
        while len(self.buf) < n:
            self.recv()
        out, self.buf = self.buf[:n], self.buf[n:]
        self.consumed += n
        return out

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.conn.add("S", self.tls, data)
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise Closed(str(e))

    def reply(self, *lines):
        """Send one reply (several lines become a multi-line reply)."""
        out = b""
        for i, l in enumerate(lines):
            l = l.encode("utf-8") if isinstance(l, str) else l
            if i < len(lines) - 1 and l[3:4] == b" ":
                l = l[:3] + b"-" + l[4:]
            out += l + b"\r\n"
        self.replies += 1
        self.send(out)

    def check_pipelining(self, line):
        """Called for each command line; records sent-ahead and violations."""
        arrived = self._arrival_replies(self.consumed)
        verb = line.split(b" ")[0].upper().decode("ascii", "replace")
        unanswered = [v for v, after in self.turns if after > arrived]
        if arrived < self.replies or unanswered:
            self.conn.sent_ahead.append(line)
            if not self.srv.pipelining or any(v in BARRIERS for v in unanswered):
                self.conn.pipelining_violations.append(line)
        return verb

    def starttls(self, cert=None):
        if self.buf:
            self.conn.notes.append("plaintext after STARTTLS discarded: %r" % self.buf[:200])
            self.buf = b""     # RFC 3207 4.2: discard
        ctx = self.srv.certs.server_context(cert or self.srv.cert, client_ca=self.srv.client_ca)
        self.sock = ctx.wrap_socket(self.sock, server_side=True)
        self.tls = True
        self.conn.tls_version = self.sock.version()
        self.conn.client_cert = self.sock.getpeercert() or None
        self.conn.sni = getattr(self.sock, "sni_name", None)


class RawServer(Results):
    def __init__(self, certs=None, *, host="127.0.0.1", hostname="mx.test", lmtp=False,
                 chunking=True, binarymime=True, eightbitmime=True, smtputf8=False,
                 pipelining=True, dsn=False, size=None, enhancedstatuscodes=True,
                 starttls=False, implicit_tls=False, require_starttls=False, cert="server",
                 client_ca=False, auth=None, users=None, rcpt_rule=default_rcpt_rule,
                 lmtp_fail=None, replies=None, extra_ehlo=(), timeout=30, max_line=4096,
                 unix_path=None):
        """lmtp_fail: {address: reply} for recipients that fail after the data
        (LMTP), e.g. {"c@example.test": "452 4.2.2 mailbox full"}.  Other
        options as SMTPServer; chunking/binarymime are on by default here.
        unix_path: listen on this unix-domain socket instead of TCP (LMTP as
        Dovecot offers it); srv.path is set and srv.port is None."""
        self.certs = certs
        self.host = host
        self.hostname = hostname
        self.lmtp = lmtp
        self.chunking = chunking
        self.binarymime = binarymime and chunking
        self.eightbitmime = eightbitmime
        self.smtputf8 = smtputf8
        self.pipelining = pipelining
        self.dsn = dsn
        self.size = size
        self.enhancedstatuscodes = enhancedstatuscodes
        self.starttls = starttls or require_starttls
        self.require_starttls = require_starttls
        self.implicit_tls = implicit_tls
        self.cert = cert
        self.client_ca = client_ca
        self.auth = list(auth or [])
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.rcpt_rule = rcpt_rule
        self.lmtp_fail = dict(lmtp_fail or {})
        self.replies = dict(replies or {})
        self.extra_ehlo = list(extra_ehlo)
        self.timeout = timeout
        self.max_line = max_line
        self.path = unix_path
        self.conns = []
        self.port = None
        self._sock = None
        self._threads = []
        self._sessions = []
        self._txn_done = threading.Event()
        self._stopping = False

    # -- life cycle ------------------------------------------------------------
    def start(self, sock=None):
        """sock: a bound socket to listen on (netlab.py: one made in another network
        namespace) instead of host and an ephemeral port."""
        if sock is not None:
            self._sock = sock
            self.port = sock.getsockname()[1]
        elif self.path:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.bind(self.path)
        else:
            fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            self._sock = socket.socket(fam, socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((self.host, 0))
            self.port = self._sock.getsockname()[1]
        self._sock.listen(16)
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stopping = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            if self.path:
                try:
                    os.unlink(self.path)
                except OSError:
                    pass
        for s in list(self._sessions):
            try:
                s.sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept_loop(self):
        while not self._stopping:
            try:
                sock, peer = self._sock.accept()
            except OSError:
                return
            sock.settimeout(self.timeout)
            t = threading.Thread(target=self._serve, args=(sock, peer), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, sock, peer):
        s = Session(self, sock, peer)
        self._sessions.append(s)
        self.conns.append(s.conn)
        try:
            if self.implicit_tls:
                s.starttls()
            self.handle(s)
        except (Closed, OSError, ssl.SSLError) as e:
            s.conn.notes.append("closed: %s" % e)
        finally:
            try:
                s.sock.close()
            except OSError:
                pass
            s.conn.closed.set()

    # -- protocol --------------------------------------------------------------
    def handle(self, s):
        """Run one session; subclasses may replace it."""
        s.reply(self.replies.get("GREETING", "220 %s %s ready" % (
            self.hostname, "LMTP" if self.lmtp else "ESMTP")))
        while True:
            line = s.readline(self.max_line)
            verb = s.check_pipelining(line)
            s.conn.commands.append((line.decode("utf-8", "replace"), s.tls))
            arg = line[len(verb) + 1:].decode("utf-8", "surrogateescape")
            if verb in self.replies and verb not in ("DATA", "BDAT"):
                s.reply(self.replies[verb])
            elif self.require_starttls and not s.tls and verb not in (
                    "EHLO", "HELO", "LHLO", "STARTTLS", "QUIT", "NOOP"):
                s.reply("530 5.7.0 Must issue a STARTTLS command first")
            else:
                fn = getattr(self, "cmd_" + verb, None)
                if fn is None:
                    s.reply("500 5.5.1 command not recognized")
                elif fn(s, arg) == "quit":
                    s.turns.append((verb, s.replies))
                    return
            s.turns.append((verb, s.replies))

    def ehlo_keywords(self, s):
        kw = []
        if self.size is not None:
            kw.append("SIZE %d" % self.size if self.size else "SIZE")
        if self.eightbitmime:
            kw.append("8BITMIME")
        if self.smtputf8:
            kw.append("SMTPUTF8")
        if self.pipelining:
            kw.append("PIPELINING")
        if self.chunking:
            kw.append("CHUNKING")
        if self.binarymime:
            kw.append("BINARYMIME")
        if self.dsn:
            kw.append("DSN")
        if self.enhancedstatuscodes:
            kw.append("ENHANCEDSTATUSCODES")
        if self.starttls and not s.tls:
            kw.append("STARTTLS")
        if self.auth:
            kw.append("AUTH " + " ".join(self.auth))
        return kw + self.extra_ehlo

    def _hello(self, s, verb, arg):
        if not arg.strip():
            return s.reply("501 5.5.4 Syntax: %s hostname" % verb)
        s.conn.helo.append("%s %s" % (verb, arg))
        s.helo = verb
        s.txn = None
        s.reply(*(["250 " + self.hostname] + ["250 " + k for k in self.ehlo_keywords(s)]))

    def cmd_EHLO(self, s, arg):
        if self.lmtp:
            return s.reply("500 5.5.1 this is LMTP: use LHLO")
        self._hello(s, "EHLO", arg)

    def cmd_HELO(self, s, arg):
        if self.lmtp:
            return s.reply("500 5.5.1 this is LMTP: use LHLO")
        s.conn.helo.append("HELO " + arg)
        s.helo = "HELO"
        s.reply("250 " + self.hostname)

    def cmd_LHLO(self, s, arg):
        if not self.lmtp:
            return s.reply("500 5.5.1 command not recognized")
        self._hello(s, "LHLO", arg)

    def cmd_NOOP(self, s, arg):
        s.reply("250 2.0.0 OK")

    def cmd_RSET(self, s, arg):
        s.txn = None
        s.reply("250 2.0.0 OK")

    def cmd_VRFY(self, s, arg):
        s.reply("252 2.1.5 cannot verify")

    def cmd_QUIT(self, s, arg):
        s.reply("221 2.0.0 bye")
        return "quit"

    def cmd_STARTTLS(self, s, arg):
        if not self.starttls or s.tls:
            return s.reply("454 4.7.0 TLS not available")
        s.reply("220 2.0.0 ready to start TLS")
        s.starttls()
        s.helo = None
        s.txn = None

    def cmd_AUTH(self, s, arg):
        parts = arg.split()
        mech = parts[0].upper() if parts else ""
        if mech not in self.auth or mech not in ("PLAIN", "LOGIN"):
            return s.reply("504 5.5.4 unrecognized authentication type")

        def ask(challenge):
            s.reply("334 " + base64.b64encode(challenge).decode())
            line = s.readline()
            if line == b"*":
                return None
            return base64.b64decode(line)
        try:
            if mech == "PLAIN":
                blob = base64.b64decode(parts[1]) if len(parts) > 1 else ask(b"")
                if blob is None:
                    return s.reply("501 5.7.0 cancelled")
                _, user, pw = blob.split(b"\0")
            else:
                user = base64.b64decode(parts[1]) if len(parts) > 1 else ask(b"Username:")
                pw = ask(b"Password:") if user is not None else None
                if pw is None:
                    return s.reply("501 5.7.0 cancelled")
        except (ValueError, TypeError):
            return s.reply("501 5.5.2 cannot decode")
        user, pw = user.decode("utf-8", "replace"), pw.decode("utf-8", "replace")
        ok = self.users.get(user) == pw
        s.conn.auth.append(AuthAttempt(mech, user, ok, s.tls))
        if ok:
            s.user = user
            s.reply("235 2.7.0 authenticated")
        else:
            s.reply("535 5.7.8 authentication failed")

    @staticmethod
    def _addr(arg, keyword):
        if arg[:len(keyword)].upper() != keyword:
            return None, None
        rest = arg[len(keyword):].strip()
        if not rest.startswith("<") or ">" not in rest:
            return None, None
        addr, _, params = rest[1:].partition(">")
        return addr, params.split()

    def cmd_MAIL(self, s, arg):
        if not s.helo:
            return s.reply("503 5.5.1 say hello first")
        if s.txn is not None:
            return s.reply("503 5.5.1 nested MAIL")
        addr, params = self._addr(arg, "FROM:")
        if addr is None:
            return s.reply("501 5.5.4 syntax: MAIL FROM:<address>")
        body = None
        for p in params:
            k, _, v = p.partition("=")
            k = k.upper()
            if k == "BODY":
                body = v.upper()
                if body == "BINARYMIME" and not self.binarymime or \
                        body == "8BITMIME" and not self.eightbitmime or \
                        body not in ("7BIT", "8BITMIME", "BINARYMIME"):
                    return s.reply("555 5.5.4 unsupported BODY")
            elif k == "SIZE" and self.size is not None:
                if self.size and v.isdigit() and int(v) > self.size:
                    return s.reply("552 5.3.4 message size exceeds fixed limit")
            elif k == "SMTPUTF8" and self.smtputf8 or k in ("RET", "ENVID") and self.dsn \
                    or k == "AUTH" and self.auth:
                pass
            else:
                return s.reply("555 5.5.4 unsupported parameter %s" % k)
        s.txn = Txn(addr, params, tls=s.tls, authenticated=s.user)
        s.body_type = body
        s.conn.txns.append(s.txn)
        s.reply("250 2.1.0 OK")

    def cmd_RCPT(self, s, arg):
        if s.txn is None:
            return s.reply("503 5.5.1 need MAIL")
        addr, params = self._addr(arg, "TO:")
        if addr is None:
            return s.reply("501 5.5.4 syntax: RCPT TO:<address>")
        for p in params:
            k = p.partition("=")[0].upper()
            if not (k in ("NOTIFY", "ORCPT") and self.dsn):
                r = "555 5.5.4 unsupported parameter %s" % k
                s.txn.rcpts.append(Rcpt(addr, params, r))
                return s.reply(r)
        r = (self.rcpt_rule(addr) if self.rcpt_rule else None) or "250 2.1.5 OK"
        s.txn.rcpts.append(Rcpt(addr, params, r))
        s.reply(r)

    def _finish(self, s, data):
        """End of data (DATA dot or BDAT LAST): record, reply once (SMTP) or
        once per accepted recipient (LMTP, RFC 2033 4.2)."""
        t = s.txn
        t.data = data
        if self.lmtp:
            replies = [self.lmtp_fail.get(a) or
                       self.replies.get("DOT") or "250 2.0.0 <%s> delivered" % a
                       for a in t.accepted_rcpts]
            t.lmtp_replies = replies
            t.reply = replies[0] if replies else ""
            for r in replies:
                s.reply(r)
        else:
            t.reply = self.replies.get("DOT", "250 2.0.0 OK queued")
            s.reply(t.reply)
        if not t.reply.startswith("2") and not any(
                r.startswith("2") for r in t.lmtp_replies):
            t.data = None
        s.txn = None
        if t.data is not None:
            self._txn_done.set()

    def cmd_DATA(self, s, arg):
        if s.txn is None or not s.txn.accepted_rcpts:
            return s.reply("554 5.5.1 no valid recipients" if s.txn else "503 5.5.1 need MAIL")
        if s.body_type == "BINARYMIME":
            return s.reply("503 5.5.1 BINARYMIME requires BDAT (RFC 3030 3)")
        if "DATA" in self.replies:
            return s.reply(self.replies["DATA"])
        if s.txn.bdat_sizes:
            return s.reply("503 5.5.1 DATA after BDAT")
        s.reply("354 end data with <CR><LF>.<CR><LF>")
        lines = []
        while True:
            line = s.readline(1 << 20)
            if line == b".":
                break
            lines.append(line[1:] if line.startswith(b".") else line)
        self._finish(s, b"".join(l + b"\r\n" for l in lines))

    def cmd_BDAT(self, s, arg):
        parts = arg.split()
        if not self.chunking or not parts or not parts[0].isdigit() or \
                len(parts) > 2 or len(parts) == 2 and parts[1].upper() != "LAST":
            # the chunk size is unknown: the session cannot continue (RFC 3030 2)
            s.reply("501 5.5.4 syntax: BDAT size [LAST]")
            return
        n = int(parts[0])
        last = len(parts) == 2
        chunk = s.read_exact(n)    # always consume the chunk (RFC 3030 2)
        if s.txn is None or not s.txn.accepted_rcpts:
            return s.reply("503 5.5.1 no valid recipients")
        if "BDAT" in self.replies:
            s.txn = None
            return s.reply(self.replies["BDAT"])
        s.txn.bdat_sizes.append(n)
        s.bdat = (getattr(s, "bdat", b"") if len(s.txn.bdat_sizes) > 1 else b"") + chunk
        if last:
            self._finish(s, s.bdat)
        else:
            s.reply("250 2.0.0 %d octets received" % n)
