"""Test servers for bluearrow's integration tests (see tests/integration/README.md).

SMTPServer   recording ESMTP server on aiosmtpd (STARTTLS, implicit TLS, AUTH incl.
             CRAM-MD5/SCRAM, SIZE, DSN, 8BITMIME, SMTPUTF8, PIPELINING on/off)
RawServer    own line parser: CHUNKING/BDAT, BINARYMIME, LMTP, scripted replies
FaultServer  hostile and broken servers (stall, garbage, injection, bad certs...)
"""
__all__ = ["AuthAttempt", "Chunk", "Conn", "Rcpt", "Txn", "rcpt_param", "SMTPServer",
           "default_rcpt_rule", "DEFAULT_USERS", "RawServer", "FaultServer", "FAULT_KINDS"]

from .record import AuthAttempt, Chunk, Conn, Rcpt, Txn, rcpt_param  # noqa: F401
from .smtp import SMTPServer, default_rcpt_rule, DEFAULT_USERS  # noqa: F401
from .raw import RawServer  # noqa: F401,E402
from .faults import FaultServer, KINDS as FAULT_KINDS  # noqa: F401,E402


def started_servers(cls, defaults=None):
    """The body of a factory fixture: yields make(**opts), which starts cls(**opts) (opts
    missing from defaults() filled in from it), and stops every server made after the
    test."""
    made = []

    def make(**opts):
        for k, v in (defaults() if defaults else {}).items():
            opts.setdefault(k, v)
        srv = cls(**opts)
        srv.start()
        made.append(srv)
        return srv
    yield make
    for s in made:
        s.stop()
