"""What the test servers record: per connection the raw byte chunks in both
directions (one entry per recv()/write), the commands, the transactions.

All servers (aiosmtpd-based, raw, scripted) fill the same classes, so a test
asserts the same way whichever server it used.
"""
import re
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class Chunk:
    """One read from (dir 'C', client to server) or one write to (dir 'S') the
    socket.  tls: whether it travelled inside TLS (plaintext of the TLS layer is
    recorded, never ciphertext)."""
    dir: str
    tls: bool
    data: bytes
    t: float = field(default_factory=time.monotonic)


@dataclass
class Rcpt:
    addr: str
    params: List[str]
    reply: str = ""


@dataclass
class Txn:
    """One mail transaction.  data is the message exactly as received, after
    removing the transparency dots (RFC 5321 4.5.2) or concatenating BDAT chunks,
    without the terminating '.'; None when no data phase completed."""
    mail_from: str
    mail_params: List[str]
    rcpts: List[Rcpt] = field(default_factory=list)
    data: Optional[bytes] = None
    reply: str = ""                 # reply to the end of data (first one in LMTP)
    lmtp_replies: List[str] = field(default_factory=list)
    bdat_sizes: List[int] = field(default_factory=list)
    tls: bool = False
    authenticated: Optional[str] = None

    @property
    def accepted_rcpts(self):
        return [r.addr for r in self.rcpts if r.reply.startswith("2")]

    @property
    def has_8bit(self):
        """Whether the data has any octet above 127 (8BITMIME/BINARYMIME needed)."""
        return self.data is not None and any(b > 127 for b in self.data)

    @property
    def max_line_length(self):
        """Longest line of the data in octets, CRLF excluded (RFC 5321 4.5.3.1.6: 998)."""
        if not self.data:
            return 0
        return max(len(l) for l in self.data.split(b"\r\n"))

    def param(self, name):
        """MAIL parameter value by keyword (case-insensitive); True for a bare
        keyword; None when absent."""
        return _param(self.mail_params, name)


def _param(params, name):
    for p in params:
        k, eq, v = p.partition("=")
        if k.upper() == name.upper():
            return v if eq else True
    return None


def rcpt_param(rcpt, name):
    return _param(rcpt.params, name)


@dataclass
class AuthAttempt:
    mechanism: str
    user: Optional[str]
    success: bool
    tls: bool


@dataclass
class ScramTrace:
    """One SCRAM exchange as the server saw it (RFC 5802 §6, §7): gs2_flag
    "n" / "y" / "p=tls-unique"...; cb_type and cb_data what the client bound
    (None without "p="); cb_server the server's own binding data by type;
    error why the server failed it (None: accepted)."""
    mechanism: str
    gs2_flag: Optional[str] = None
    cb_type: Optional[str] = None
    cb_data: Optional[bytes] = None
    cb_server: dict = field(default_factory=dict)
    error: Optional[str] = None


class Conn:
    """Everything one client connection did."""

    def __init__(self, peer=None):
        self.peer = peer
        self.chunks: List[Chunk] = []
        self.commands: List[tuple] = []        # (line without CRLF, tls)
        self.txns: List[Txn] = []
        self.auth: List[AuthAttempt] = []
        self.scram: List[ScramTrace] = []      # SCRAM details (channel binding)
        self.helo: List[str] = []              # "EHLO name" / "HELO name" / "LHLO name"
        self.tls_version: Optional[str] = None
        self.client_cert: Optional[dict] = None
        self.sni: Optional[str] = None         # server name the client sent (TLS SNI)
        self.pipelining_violations: List[bytes] = []   # see PipelineCheck
        self.sent_ahead: List[bytes] = []
        self.closed = threading.Event()
        self.notes: List[str] = []             # free text from fault servers
        self._lock = threading.Lock()

    # -- recording -----------------------------------------------------------
    def add(self, dir, tls, data):
        with self._lock:
            self.chunks.append(Chunk(dir, tls, bytes(data)))

    # -- views ---------------------------------------------------------------
    def client_bytes(self, tls=None):
        """All bytes the client sent; tls=False only before TLS, True only inside."""
        return b"".join(c.data for c in self.chunks
                        if c.dir == "C" and (tls is None or c.tls == tls))

    def server_bytes(self, tls=None):
        return b"".join(c.data for c in self.chunks
                        if c.dir == "S" and (tls is None or c.tls == tls))

    def client_chunks(self, tls=None):
        return [c.data for c in self.chunks
                if c.dir == "C" and (tls is None or c.tls == tls)]

    def client_lines(self, tls=None):
        """Client bytes split on CRLF (DATA content included)."""
        return _split_lines(self.client_bytes(tls))

    def plaintext_commands(self):
        """Command words sent before TLS started (STARTTLS included)."""
        return [l.split(b" ")[0].upper().decode("ascii", "replace")
                for l in self.client_lines(tls=False) if l]

    def groups(self, tls=None):
        """Client lines grouped by the read they arrived in: [[b'MAIL FROM:<a>',
        b'RCPT TO:<b>', b'DATA'], ...].  A client that pipelines writes a group in
        one segment; a lock-step client gives one line per group."""
        out = []
        pending = b""
        for c in self.chunks:
            if c.dir != "C" or (tls is not None and c.tls != tls):
                continue
            pending += c.data
            lines = pending.split(b"\r\n")
            pending = lines.pop()
            if lines:
                out.append(lines)
        return out

    def bare_cr_lf(self, tls=None):
        """Offsets of CR not followed by LF or LF not preceded by CR in the client's
        bytes (DATA content included).  Must be empty (docs/ARCHITECTURE.md invariant 2)."""
        data = self.client_bytes(tls)
        bad = [m.start() for m in re.finditer(rb"\r(?!\n)|(?<!\r)\n", data)]
        return bad

    def transcript(self):
        """Readable transcript for failure messages."""
        out = []
        for c in self.chunks:
            tag = ("C" if c.dir == "C" else "S") + ("~" if c.tls else ":")
            out.append("%s %r" % (tag, c.data[:400]))
        return "\n".join(out)

    def wait_closed(self, timeout=5):
        return self.closed.wait(timeout)


def _split_lines(data):
    lines = data.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


class PipelineCheck:
    """Detects a client that sends before it has the reply to what it sent
    before.  Without PIPELINING every such command is a violation (RFC 5321
    lock-step); with PIPELINING (RFC 2920 3.1) only a command sent after an
    unanswered EHLO, HELO, LHLO, STARTTLS (RFC 3207), AUTH (RFC 4954), DATA,
    VRFY, EXPN, NOOP or QUIT is, and message content sent before the 354.

    Fed with every received chunk and every reply line the server writes.  A
    'turn' is a command line, an AUTH continuation line or the whole DATA body.
    sent_ahead lists every turn that arrived while an earlier one was still
    unanswered (pipelined), violations those that broke the rules.
    """
    BARRIERS = (b"EHLO", b"HELO", b"LHLO", b"STARTTLS", b"AUTH", b"DATA", b"VRFY",
                b"EXPN", b"NOOP", b"QUIT", b"TURN")

    def __init__(self, pipelining=False):
        self.pipelining = pipelining
        self.unanswered = [b"<greeting>"]
        self.in_data = False
        self.partial = b""
        self.sent_ahead: List[bytes] = []
        self.violations: List[bytes] = []

    def server_line(self, line):
        if len(line) >= 4 and line[3:4] == b" " or len(line) == 3:
            if self.unanswered:
                answered = self.unanswered.pop(0)
                if answered.upper() == b"DATA":
                    self.in_data = line.startswith(b"354")

    def client_chunk(self, data):
        self.partial += data
        while b"\n" in self.partial:
            line, _, self.partial = self.partial.partition(b"\n")
            line = line.rstrip(b"\r")
            if self.in_data:
                if line == b".":
                    self.in_data = False
                    self._turn(b".")
                continue
            self._turn(line)

    def _turn(self, line):
        if self.unanswered:
            self.sent_ahead.append(line)
            if not self.pipelining or any(
                    u.split(b" ")[0].upper() in self.BARRIERS for u in self.unanswered):
                self.violations.append(line)
        self.unanswered.append(line)


class Results:
    """Result accessors shared by every server class (needs self.conns and
    self._txn_done, a threading.Event set when a message is accepted)."""

    @property
    def txns(self):
        """All transactions of all connections, in order."""
        return [t for c in list(self.conns) for t in c.txns]

    @property
    def messages(self):
        """Transactions whose data was accepted (2xx after the data)."""
        return [t for t in self.txns if t.data is not None]

    @property
    def conn(self):
        """The first connection."""
        if not self.conns:
            raise AssertionError("no connection was made")
        return self.conns[0]

    def wait_txn(self, timeout=10):
        """Wait until a message was accepted; return the first one."""
        if not self._txn_done.wait(timeout):
            raise AssertionError("no message received within %ss; transcript:\n%s"
                                 % (timeout, self.transcript()))
        return self.messages[0]

    def wait_messages(self, n, timeout=10):
        """Wait until n messages were accepted; return them all."""
        end = time.monotonic() + timeout
        while len(self.messages) < n:
            if time.monotonic() > end:
                raise AssertionError("%d of %d messages within %ss; transcript:\n%s"
                                     % (len(self.messages), n, timeout, self.transcript()))
            time.sleep(0.01)
        return self.messages

    def wait_conn_closed(self, timeout=10):
        """Wait until every connection so far is closed."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.conns and all(c.closed.is_set() for c in self.conns):
                return True
            time.sleep(0.01)
        return False

    def transcript(self):
        return "\n---\n".join(c.transcript() for c in list(self.conns))
