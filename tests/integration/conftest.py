"""Shared pytest fixtures for bluearrow's integration tests.

    def test_scram(smtp_server, write_config, sendmail):
        srv = smtp_server(starttls=True, auth=["SCRAM-SHA-256"])
        cfg = write_config(srv, tls="on", tls_starttls="on", auth="scram-sha-256",
                           user="user", password="password")
        r = sendmail("-C", cfg, "-f", "a@x.test", "b@y.test", input=MSG)
        assert r.returncode == 0, r.stderr
        txn = srv.wait_txn()
        assert txn.rcpts[0].addr == "b@y.test" and txn.data == MSG
        assert srv.conn.plaintext_commands() == ["EHLO", "STARTTLS"]

See README.md in this directory for every fixture and option.
"""
import os
import shlex
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from certs import make_certs  # noqa: E402
from servers import SMTPServer, started_servers  # noqa: E402


def build_dir():
    return os.environ.get("BA_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")


# BA_VALGRIND=1: every run of bluearrow goes through valgrind memcheck
VALGRIND = ["/usr/bin/valgrind", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite", "--track-fds=no", "-q"]
BA_PROGRAMS = ("bluearrow", "sendmail", "bluearrow-sendmail", "mailq")


def _valgrind_build_dir():
    """With BA_VALGRIND=1: a private directory mirroring the build directory
    (symbolic links) in which bluearrow and its sendmail links are scripts that
    exec them under valgrind (VALGRIND).  BA_BUILD_DIR is pointed there before
    any test module is imported, so every way a test finds the binary (the
    fixtures, tests/proto/run.py, modules reading BA_BUILD_DIR) runs it under
    valgrind; memory errors and definite leaks exit 99 and fail the test."""
    import atexit
    import shutil
    import tempfile
    real = os.path.abspath(build_dir())
    shadow = tempfile.mkdtemp(prefix="ba-valgrind-")
    atexit.register(shutil.rmtree, shadow, True)
    for name in os.listdir(real):
        if name not in BA_PROGRAMS:
            os.symlink(os.path.join(real, name), os.path.join(shadow, name))
    for name in BA_PROGRAMS:
        path = os.path.join(shadow, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\nexec %s %s \"$@\"\n" % (" ".join(VALGRIND),
                                                         shlex.quote(os.path.join(real, name))))
        os.chmod(path, 0o755)
    return shadow


if os.environ.get("BA_VALGRIND") == "1" and not os.environ.get("BA_VALGRIND_DIR"):
    os.environ["BA_VALGRIND_DIR"] = os.environ["BA_BUILD_DIR"] = _valgrind_build_dir()


def bluearrow_path():
    return os.path.join(build_dir(), "bluearrow")


def sut_sendmail_cmd():
    """The sendmail under test as an argv prefix: $SUT_SENDMAIL (split like a
    shell would) or '$BA_BUILD_DIR/bluearrow sendmail'."""
    env = os.environ.get("SUT_SENDMAIL")
    if env:
        return shlex.split(env)
    return [bluearrow_path(), "sendmail"]


def bluearrow_sendmail_works():
    """True when '$BA_BUILD_DIR/bluearrow sendmail --help' exits 0."""
    try:
        r = subprocess.run([bluearrow_path(), "sendmail", "--help"], capture_output=True,
                           timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    """certs.Certs with CA, server, expired, notyet, wronghost, untrusted,
    clientonly and client certificates, generated once per session."""
    return make_certs(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture
def smtp_server(request):
    """Factory: smtp_server(**opts) -> started servers.SMTPServer, stopped after
    the test.  TLS options get the session's certificates automatically."""
    yield from started_servers(SMTPServer,
                               lambda: {"certs": request.getfixturevalue("tls_certs")})


@pytest.fixture
def raw_server(request):
    """Factory: raw_server(**opts) -> started servers.RawServer (own parser:
    CHUNKING/BDAT, BINARYMIME, LMTP, scripted replies)."""
    from servers import RawServer
    yield from started_servers(RawServer,
                               lambda: {"certs": request.getfixturevalue("tls_certs")})


@pytest.fixture
def lmtp_server(raw_server):
    """Factory: lmtp_server(**opts) -> RawServer(lmtp=True, ...)."""
    def make(**opts):
        opts.setdefault("lmtp", True)
        return raw_server(**opts)
    return make


@pytest.fixture
def fault_server(request):
    """Factory: fault_server(kind, **opts) -> started servers.FaultServer; see
    servers/faults.py KINDS for the list."""
    from servers import FaultServer
    started = []

    def make(kind, **opts):
        if "certs" not in opts:
            opts["certs"] = request.getfixturevalue("tls_certs")
        srv = FaultServer(kind, **opts).start()
        started.append(srv)
        return srv
    yield make
    for s in started:
        s.stop()


@pytest.fixture
def bluearrow():
    """Path of the built bluearrow binary ($BA_BUILD_DIR/bluearrow); skips the
    test when it has not been built."""
    p = bluearrow_path()
    if not os.access(p, os.X_OK):
        pytest.skip("bluearrow not built at %s" % p)
    return p


def render_config(server=None, certs=None, account="test", **keys):
    """msmtprc text for one account (also the default).  host/port (or socket
    for a unix-domain server) come from server; True/False become on/off; tls_trust_file defaults to the test CA
    when tls is on; timeout defaults to 10 so a broken client cannot hang."""
    vals = {}
    if server is not None and getattr(server, "path", None):
        # unix-domain socket; msmtp still wants host and port set (both ignored)
        vals.update(host="localhost", port=24, socket=server.path)
    elif server is not None:
        vals["host"] = getattr(server, "host", "127.0.0.1")
        vals["port"] = server.port
    vals["timeout"] = 10
    for k, v in keys.items():
        if v is None:
            vals.pop(k, None)
            continue
        vals[k] = "on" if v is True else "off" if v is False else v
    if vals.get("tls") == "on" and "tls_trust_file" not in keys and certs is not None:
        vals["tls_trust_file"] = certs.ca
    lines = ["account %s" % account]
    lines += ["%s %s" % (k, v) for k, v in vals.items()]
    lines.append("account default : %s" % account)
    return "\n".join(lines) + "\n"


@pytest.fixture
def write_config(tmp_path, request):
    """write_config(server=None, text=None, name="config", **keys) -> path of an
    msmtprc-syntax file (mode 600).  Keys are msmtp keys: tls="on",
    tls_starttls=True, auth="plain", user=..., password=..., from_=... (a
    trailing underscore is dropped: from_ -> from).  text= writes verbatim."""
    def write(server=None, text=None, name="config", **keys):
        if text is None:
            keys = {k.rstrip("_"): v for k, v in keys.items()}
            certs = request.getfixturevalue("tls_certs")
            text = render_config(server, certs, **keys)
        path = tmp_path / name
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(str(path), 0o600)
        return str(path)
    return write


@pytest.fixture
def sendmail():
    """sendmail(*args, input=b"", timeout=20, env=None) -> CompletedProcess of
    the sendmail under test ($SUT_SENDMAIL or '$BA_BUILD_DIR/bluearrow
    sendmail'), stdout/stderr as bytes."""
    def run(*args, input=b"", timeout=20, env=None):
        cmd = sut_sendmail_cmd() + [str(a) for a in args]
        e = dict(os.environ)
        e.update(env or {})
        return subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, env=e)
    return run


@pytest.fixture
def msmtp():
    """Like sendmail, but always msmtp (for validating the servers)."""
    def run(*args, input=b"", timeout=20):
        return subprocess.run(["msmtp"] + [str(a) for a in args], input=input,
                              capture_output=True, timeout=timeout)
    return run
