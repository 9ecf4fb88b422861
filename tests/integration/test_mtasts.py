"""MTA-STS policy fetch and cache (core/mtasts.c) against a real HTTPS server on
loopback (servers/mtasts.py, a certificate of the test CA for mta-sts.DOMAIN).
The test tool's --connect-to sends the fetch to the server's port; the
certificate is still checked against mta-sts.DOMAIN."""
import os
import stat
import subprocess
import time

import pytest

from certs import make_certs
from conftest import build_dir
from servers.mtasts import PolicyServer

DOMAINS = ["%s.test" % c for c in "abcdefghijklm"]
POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mx.%s\r\nmx: *.mx.%s\r\nmax_age: 600\r\n"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(str(tmp_path_factory.mktemp("certs")),
                      extra={"mtasts": ["mta-sts." + d for d in DOMAINS]})


@pytest.fixture
def server(certs):
    ps = PolicyServer(certs, "mtasts").start()
    for d in DOMAINS:
        ps.policies[d] = POLICY % (d, d)
    yield ps
    ps.stop()


def lookup(server, certs, cache, domain, *args, txt="v=STSv1; id=1", trust=None, timeout=10):
    tool = os.path.join(build_dir(), "tests", "ba-test-tool")
    cmd = [tool, "mtasts", domain, "--cache", str(cache), "--trust", trust or certs.ca,
           "--connect-to", "127.0.0.1:%d" % server.port, "--timeout", "5000"]
    if txt:
        cmd += ["--txt", txt]
    r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        k, _, v = line.partition(": ")
        out.setdefault(k, []).append(v)
    return {k: v if k == "mx" else v[0] for k, v in out.items()}, r.stderr


def test_fetch_and_cache(server, certs, tmp_path):
    cache = tmp_path / "c" / "mta-sts"
    out, log = lookup(server, certs, cache, "a.test")
    assert out["source"] == "fetched" and out["mode"] == "enforce"
    assert out["mx"] == ["mx.a.test", "*.mx.a.test"] and out["max_age"] == "600"
    assert "https://mta-sts.a.test/.well-known/mta-sts.txt" in log
    f = cache / "a.test"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert [p.name for p in cache.iterdir()] == ["a.test"]  # no temporary file left
    # the same id: from the cache, no request
    out, _ = lookup(server, certs, cache, "a.test")
    assert out["source"] == "cached" and server.hits["a.test"] == 1
    # a new id: fetched again, and the cache follows
    server.policies["a.test"] = "version: STSv1\nmode: testing\nmx: mx2.a.test\nmax_age: 60\n"
    out, _ = lookup(server, certs, cache, "a.test", txt="v=STSv1; id=2")
    assert out["source"] == "fetched" and out["mode"] == "testing"
    assert server.hits["a.test"] == 2
    out, _ = lookup(server, certs, cache, "a.test", txt="v=STSv1; id=2")
    assert out["source"] == "cached" and out["mx"] == ["mx2.a.test"]
    # the policy server breaks: the cached policy holds until it expires
    server.status["a.test"] = 500
    out, _ = lookup(server, certs, cache, "a.test", txt="v=STSv1; id=3")
    assert out["source"] == "cached" and "HTTP status 500" in out["note"]
    out, _ = lookup(server, certs, cache, "a.test", "--now", str(int(time.time()) + 61),
                    txt="v=STSv1; id=3")
    assert out["source"] == "none"


@pytest.mark.parametrize("case", ["wrong-name", "untrusted", "redirect", "404", "type",
                                  "oversize", "invalid", "slow"])
def test_fetch_failures_give_no_policy(server, certs, tmp_path, case):
    """Each failed fetch with nothing cached: no policy (opportunistic TLS), a note why."""
    d, trust, want = "b.test", None, None
    if case == "wrong-name":      # the server has no certificate for mta-sts.zz.test
        d, want = "zz.test", "failed"
        server.policies[d] = POLICY % (d, d)
    elif case == "untrusted":
        trust, want = certs.other_ca, "failed"
    elif case == "redirect":
        server.redirect[d], want = "https://mta-sts.c.test/.well-known/mta-sts.txt", "HTTP status 301"
    elif case == "404":
        del server.policies[d]
        want = "HTTP status 404"
    elif case == "type":
        server.content_type[d], want = "text/html", "not text/plain"
    elif case == "oversize":
        server.policies[d] = POLICY % (d, d) + "x: y\n" * 14000
        want = "larger than 64 KB"
    elif case == "invalid":
        server.policies[d], want = "version: STSv1\nmode: enforce\nmax_age: 60\n", "no mx field"
    elif case == "slow":
        server.delay[d], want = 4, "no reply in time"
    t = time.monotonic()
    out, _ = lookup(server, certs, tmp_path, d, *(("--timeout", "1000") if case == "slow" else ()),
                    trust=trust)
    assert out["source"] == "none"
    assert want in out["note"]
    if case == "slow":
        assert time.monotonic() - t < 3.8   # the deadline, not the server, ends it
    assert not (tmp_path / d).exists()
    if case == "redirect":
        assert "c.test" not in server.hits


def test_no_record_no_fetch(server, certs, tmp_path):
    out, _ = lookup(server, certs, tmp_path, "d.test", txt=None)
    assert out["source"] == "none" and "d.test" not in server.hits
    out, _ = lookup(server, certs, tmp_path, "d.test", txt="v=STSv1; id=1", )
    assert out["source"] == "fetched"
    # the TXT record is gone: the cached policy still applies
    out, _ = lookup(server, certs, tmp_path, "d.test", txt=None)
    assert out["source"] == "cached"
    out, _ = lookup(server, certs, tmp_path, "d.test", "--txt-failed", txt=None)
    assert out["source"] == "cached"
