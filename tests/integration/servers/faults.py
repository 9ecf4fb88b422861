"""Broken and hostile servers, for tests that a client fails cleanly and fast.

    srv = FaultServer("stall_after_mail").start()    # srv.port, srv.conns as RawServer

KINDS (option keywords in brackets):
  refused             nothing listens on srv.port (bound, then closed)
  stall               accept, never send anything
  stall_after_mail    greeting and EHLO answered, then silence from MAIL on
  drop_mid_data       354 to DATA, read [drop_after=1] bytes of data, close
  garbage             binary garbage instead of a greeting [payload=]
  long_line           a greeting line of [line_size=1 MiB] bytes
  endless_multiline   "250-" lines forever in reply to EHLO
  trickle             the greeting, one byte per [delay=1.0] seconds
  starttls_injection  "220 ready\r\n250 AUTH PLAIN\r\n" in one segment to STARTTLS,
                      then TLS
  no_starttls         STARTTLS not offered (but every command accepted)
  bad_cert            STARTTLS offered, then TLS with certificate [cert=expired]
                      (expired, notyet, wronghost, untrusted, clientonly);
                      implicit_tls=True for the port-465 variant
  bad_code            replies with a code that is not 3 digits [code="25"] to EHLO
  control_chars       ANSI escapes, C1 controls, BEL, BS and NUL in the greeting and
                      in a 550 reply to MAIL
Anything not named above behaves like RawServer.
"""
import socket
import time

from .raw import Closed, RawServer

KINDS = ("refused", "stall", "stall_after_mail", "drop_mid_data", "garbage", "long_line",
         "endless_multiline", "trickle", "starttls_injection", "no_starttls", "bad_cert",
         "bad_code", "control_chars")

HOSTILE_TEXT = ("\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x1b[0m \u009b31m C1 \x07bell \x08back "
                "\x00nul")


class FaultServer(RawServer):
    def __init__(self, kind, certs=None, *, drop_after=1, payload=None, line_size=1 << 20,
                 delay=1.0, code="25", **opts):
        if kind not in KINDS:
            raise ValueError("unknown fault kind %r (one of %s)" % (kind, ", ".join(KINDS)))
        self.kind = kind
        self.drop_after = drop_after
        self.payload = payload if payload is not None else bytes(range(256)) * 4
        self.line_size = line_size
        self.delay = delay
        self.code = code
        if kind in ("starttls_injection", "bad_cert"):
            opts.setdefault("starttls", not opts.get("implicit_tls"))
        if kind == "bad_cert":
            opts.setdefault("cert", "expired")
        super().__init__(certs, **opts)

    def start(self):
        if self.kind == "refused":
            # bind to reserve a free port number, never listen: connect() is refused
            self._sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
            self._sock.bind((self.host, 0))
            self.port = self._sock.getsockname()[1]
            self._stopping = True
            return self
        return super().start()

    def ehlo_keywords(self, s):
        kw = super().ehlo_keywords(s)
        if self.kind == "no_starttls":
            kw = [k for k in kw if k != "STARTTLS"]
        return kw

    def handle(self, s):
        k = self.kind
        if k == "stall":
            return self._stall(s)
        if k == "garbage":
            s.send(self.payload)
            return self._stall(s)
        if k == "long_line":
            s.send(b"220 " + b"x" * self.line_size + b"\r\n")
            return self._stall(s)
        if k == "trickle":
            for b in b"220 mx.test ESMTP this greeting is very slow to arrive\r\n":
                s.send(bytes([b]))
                time.sleep(self.delay)
            return self._stall(s)
        if k == "control_chars":
            self.replies["GREETING"] = "220 mx.test " + HOSTILE_TEXT
            self.replies["MAIL"] = "550 5.7.1 " + HOSTILE_TEXT
        if k == "bad_code":
            self.replies["EHLO"] = self.code + " mx.test"
            self.replies["HELO"] = self.code + " mx.test"
        return super().handle(s)

    def _stall(self, s):
        """Read and record until the client gives up."""
        s.sock.settimeout(self.timeout)
        try:
            while True:
                s.recv()
        except Closed:
            return

    def cmd_MAIL(self, s, arg):
        if self.kind == "stall_after_mail":
            return self._stall(s) or "quit"
        return super().cmd_MAIL(s, arg)

    def cmd_EHLO(self, s, arg):
        if self.kind == "endless_multiline":
            s.conn.helo.append("EHLO " + arg)
            line = b"250-" + b"A" * 70 + b"\r\n"
            try:
                while True:
                    s.send(line * 100)
            except Closed:
                return "quit"
        return super().cmd_EHLO(s, arg)

    def cmd_STARTTLS(self, s, arg):
        if self.kind == "starttls_injection":
            s.replies += 2
            s.send(b"220 2.0.0 ready\r\n250 AUTH PLAIN\r\n")
            s.starttls()
            s.helo = None
            return None
        return super().cmd_STARTTLS(s, arg)

    def cmd_DATA(self, s, arg):
        if self.kind == "drop_mid_data":
            if s.txn is None or not s.txn.accepted_rcpts:
                return s.reply("554 5.5.1 no valid recipients")
            s.reply("354 go ahead")
            got = len(s.buf)
            while got < self.drop_after:
                got += len(s.recv())
            s.sock.shutdown(socket.SHUT_RDWR)
            return "quit"
        return super().cmd_DATA(s, arg)
