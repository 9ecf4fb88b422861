"""Fixtures for the end-to-end tests against real mail software (see README.md).

Reuses tests/integration (certificates made at test time, the aiosmtpd
recording server, write_config) and adds private Dovecot instances (mta.py).
"""
import importlib.util
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
INTEG = os.path.normpath(os.path.join(HERE, "..", "integration"))
for d in (HERE, INTEG):
    if d not in sys.path:
        sys.path.insert(0, d)

# tests/integration/conftest.py under another name (both files are "conftest")
_spec = importlib.util.spec_from_file_location("ba_integration_conftest",
                                               os.path.join(INTEG, "conftest.py"))
_ic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ic)

# re-exported fixtures and helpers
tls_certs = _ic.tls_certs
smtp_server = _ic.smtp_server
write_config = _ic.write_config
render_config = _ic.render_config
bluearrow_path = _ic.bluearrow_path
bluearrow_sendmail_works = _ic.bluearrow_sendmail_works

import mta  # noqa: E402
from servers import SMTPServer  # noqa: E402


class Client:
    """A sendmail-compatible client: run(*args, input=b"") -> CompletedProcess."""

    def __init__(self, name, argv, exit_codes, quirks=()):
        self.name = name
        self.argv = argv
        self.exit = exit_codes  # scenario -> expected exit status
        self.quirks = set(quirks)  # known deviations, asserted as such

    def run(self, *args, input=b"", timeout=30):
        return subprocess.run(self.argv + [str(a) for a in args], input=input,
                              capture_output=True, timeout=timeout)


# sysexits: msmtp's (checked against msmtp 1.8.23) and bluearrow's documented ones
MSMTP = Client("msmtp", ["msmtp"], {"refused": 65, "auth": 77, "noauth": 69, "tls": 69},
               # msmtp sends a bare CR as it is; with 'auth on' over TLS it takes PLAIN
               quirks={"bare-cr", "auto-plain"})
BLUEARROW = Client("bluearrow", None, {"refused": 67, "auth": 77, "noauth": 77, "tls": 69})


@pytest.fixture(scope="session")
def relay_sink(tls_certs):
    """The aiosmtpd recording server Dovecot's submission service relays to."""
    srv = SMTPServer(certs=tls_certs, hostname="relay.test").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def dovecot(tls_certs, relay_sink):
    """A private Dovecot (submission relaying to relay_sink, LMTP into Maildirs)."""
    if not mta.have_dovecot():
        pytest.skip("dovecot-core, dovecot-submissiond, dovecot-lmtpd are not installed "
                    "(scripts/deps)")
    dc = mta.Dovecot(tls_certs, relay_port=relay_sink.port).start()
    yield dc
    dc.stop()
