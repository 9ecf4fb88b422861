"""Fixtures of the bluearrow-tui tests (tmux-driven; see tuilib.py)."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.join(HERE, "..", "integration")
for p in (HERE, INTEGRATION):
    if p not in sys.path:
        sys.path.insert(0, p)

from servers import RawServer, SMTPServer, started_servers  # noqa: E402
import tuilib  # noqa: E402


def pytest_collection_modifyitems(config, items):
    reason = None
    if not os.path.exists(tuilib.tui_path()):
        reason = "bluearrow-tui is not built (ncursesw missing or BA_TUI=OFF)"
    elif not tuilib.has_tmux():
        reason = "tmux is not installed"
    elif tuilib.VALGRIND:
        # the scenarios measure latency (keys echo within 50 ms, autosave within 1 s) and
        # drive a terminal in real time: under memcheck's 20-50x slowdown they measure
        # valgrind; the TUI's memory is checked by the ASan stage instead
        reason = "not run under valgrind (real-time terminal scenarios)"
    if reason:
        for item in items:
            if "tui" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.skip(reason=reason))


def account_config(port, **keys):
    lines = ["defaults", "timeout 10", "", "account test", "host 127.0.0.1", "port %d" % port,
             "from me@example.test", "from_full_name Me Example"]
    for k, v in keys.items():
        lines.append("%s %s" % (k.rstrip("_"), v))
    lines += ["", "account default : test", ""]
    return "\n".join(lines)


@pytest.fixture
def smtp_server():
    yield from started_servers(SMTPServer)


@pytest.fixture
def raw_server():
    yield from started_servers(RawServer)


@pytest.fixture
def tui(tmp_path):
    made = []

    def make(port_or_server, settings="set undo_seconds 0\n", name="t", config_keys=None,
             **kw):
        port = port_or_server if isinstance(port_or_server, int) else port_or_server.port
        t = tuilib.Tui(tmp_path / name, account_config(port, **(config_keys or {})),
                       settings=settings, **kw)
        made.append(t)
        return t
    yield make
    for t in made:
        t.close()


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
