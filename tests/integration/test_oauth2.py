"""OAuth2 tokens end to end: a local HTTPS token endpoint (servers/oauth2.py, the
test CA) and an SMTP server that checks bearer tokens (XOAUTH2, OAUTHBEARER).
The access token is fetched with the refresh-token grant, cached in
$XDG_STATE_HOME/bluearrow/oauth2/ACCOUNT, refreshed when it expires or when the
server refuses it (once), and never shown: not in -v, the log file, errors, or
the argv and environment of the commands bluearrow runs."""
import os
import re
import stat
import subprocess
import time

import pytest

from conftest import bluearrow_path
from servers.oauth2 import TokenEndpoint

MSG = b"From: u@example.test\nTo: r@example.test\nSubject: t\n\nbody\n"
USER = "u@example.test"


@pytest.fixture
def setup(smtp_server, write_config, tls_certs, tmp_path):
    """(run, srv, ep, state_dir, cfg_writer): an SMTP server accepting tokens the
    endpoint issued, and a sendmail runner with its own XDG_STATE_HOME."""
    srv = smtp_server(starttls=True, auth=["XOAUTH2", "OAUTHBEARER"], tokens={})
    ep = TokenEndpoint(tls_certs, refresh_tokens={"rt-1-secret"},
                       on_token=lambda t: srv.tokens.__setitem__(USER, t)).start()
    state = tmp_path / "state"
    env = dict(os.environ, XDG_STATE_HOME=str(state))
    env.pop("BLUEARROW_CONFIG", None)

    def config(**keys):
        base = dict(tls="on", tls_starttls="on", auth="xoauth2", user=USER,
                    oauth2_client_id="cid", oauth2_token_endpoint=ep.url("/token"),
                    oauth2_refresh_token="rt-1-secret")
        base.update(keys)
        return write_config(srv, **base)

    def run(cfg, *args, cmd=("sendmail",), input=MSG, timeout=30):
        argv = [bluearrow_path()] + list(cmd) + ["-C", cfg] + [str(a) for a in args]
        if cmd == ("sendmail",) and "-f" not in args:
            argv += ["-f", USER, "r@example.test"]
        return subprocess.run(argv, input=input, capture_output=True, env=env,
                              timeout=timeout)
    yield run, srv, ep, state / "bluearrow" / "oauth2", config
    ep.stop()


def auth_results(srv):
    return [a.success for c in srv.conns for a in c.auth]


def test_first_send_refreshes_and_caches_second_reuses(setup):
    run, srv, ep, state, config = setup
    cfg = config()
    r = run(cfg)
    assert r.returncode == 0, r.stderr
    assert ep.count() == 1
    form = ep.requests[0][1]
    assert form == {"grant_type": "refresh_token", "refresh_token": "rt-1-secret",
                    "client_id": "cid"}
    cache = state / "test"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert "at-1-secret" in cache.read_text()
    r = run(cfg)
    assert r.returncode == 0, r.stderr
    assert ep.count() == 1  # the cached token
    assert auth_results(srv) == [True, True]
    assert len(srv.txns) == 2


def test_oauthbearer_and_client_secret(setup):
    run, srv, ep, state, config = setup
    ep.client_secret = "cs-secret"
    cfg = config(auth="oauthbearer", oauth2_client_secret="cs-secret")
    r = run(cfg)
    assert r.returncode == 0, r.stderr
    assert ep.requests[0][1]["client_secret"] == "cs-secret"
    assert [a.mechanism for c in srv.conns for a in c.auth] == ["OAUTHBEARER"]


def test_expired_token_is_refreshed(setup):
    run, srv, ep, state, config = setup
    cfg = config()
    assert run(cfg).returncode == 0
    cache = state / "test"
    text = cache.read_text()
    # expiring within the margin (60 s) counts as expired
    cache.write_text(re.sub(r"expires \d+", "expires %d" % (time.time() + 30), text))
    r = run(cfg)
    assert r.returncode == 0, r.stderr
    assert ep.count() == 2
    assert "at-2-secret" in cache.read_text()


def test_rejected_token_one_refresh_and_retry(setup):
    run, srv, ep, state, config = setup
    cfg = config()
    assert run(cfg).returncode == 0
    srv.tokens[USER] = "revoked-by-server"  # the cached at-1 is refused now
    r = run(cfg, "-v")
    assert r.returncode == 0, r.stderr
    assert ep.count() == 2
    assert auth_results(srv) == [True, False, True]
    assert b"refused; refreshing" in r.stderr


def test_rejected_token_is_refreshed_only_once(setup):
    run, srv, ep, state, config = setup
    ep.on_token = None  # the server never learns a new token
    srv.tokens[USER] = "something-else"
    cfg = config()
    r = run(cfg)
    assert r.returncode == 77, r.stderr
    assert ep.count() == 2  # the first token, and exactly one refresh
    assert auth_results(srv) == [False, False]


def test_revoked_refresh_token_exit_77_names_command(setup):
    run, srv, ep, state, config = setup
    ep.revoked = True
    r = run(config())
    assert r.returncode == 77, r.stderr
    err = r.stderr.decode()
    assert "bluearrow oauth2 authorize -a test" in err
    assert "invalid_grant" in err
    assert "rt-1-secret" not in err
    assert srv.conns == []  # nothing was sent to the mail server


def test_rotated_refresh_token_is_stored_and_used(setup):
    run, srv, ep, state, config = setup
    ep.rotate = True
    cfg = config()
    assert run(cfg).returncode == 0
    stored = state / "test.refresh"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stored.read_text() == "rt-1-rotated\n"
    (state / "test").unlink()  # force a refresh: the old rt-1-secret is no longer valid
    r = run(cfg)
    assert r.returncode == 0, r.stderr
    assert ep.requests[-1][1]["refresh_token"] == "rt-1-rotated"
    assert stored.read_text() == "rt-2-rotated\n"


def test_slow_endpoint_is_bounded(setup):
    run, srv, ep, state, config = setup
    # under valgrind the start-up alone takes seconds: a longer stall, a looser bound,
    # still well short of the stall
    slow = os.environ.get("BA_VALGRIND") == "1"
    ep.delay = 30 if slow else 8
    t0 = time.monotonic()
    r = run(config(timeout=2))
    took = time.monotonic() - t0
    assert r.returncode == 75, r.stderr
    assert took < (20 if slow else 6), took
    assert b"no reply in time" in r.stderr


def test_oversized_reply_is_bounded(setup):
    run, srv, ep, state, config = setup
    ep.oversize = 200000
    r = run(config())
    assert r.returncode == 76, r.stderr
    assert b"larger than 64 KB" in r.stderr
    assert not (state / "test").exists()


def test_untrusted_endpoint_certificate(setup, tls_certs):
    run, srv, ep, state, config = setup
    # the account trusts another CA: the endpoint's certificate is refused (and so is the
    # server's, but the token is fetched first)
    r = run(config(tls_trust_file=tls_certs.other_ca))
    assert r.returncode == 69, r.stderr
    assert ep.count() == 0


def test_no_token_in_trace_log_errors_or_children(setup, tmp_path):
    run, srv, ep, state, config = setup
    ep.client_secret = "cs-secret"
    dump = tmp_path / "dump"
    rt = tmp_path / "rt"
    rt.write_text("rt-1-secret\n")
    # each eval records its own and its parent's (bluearrow's) argv and environment
    script = tmp_path / "ev.sh"
    script.write_text("#!/bin/sh\nfor p in $$ $PPID; do cat /proc/$p/cmdline /proc/$p/environ"
                      " >> %s; done\ncat \"$1\"\n" % dump)
    script.chmod(0o700)
    cs = tmp_path / "cs"
    cs.write_text("cs-secret\n")
    log = tmp_path / "log"
    cfg = config(oauth2_refresh_token=None,
                 oauth2_refresh_token_eval="%s %s" % (script, rt),
                 oauth2_client_secret_eval="%s %s" % (script, cs),
                 logfile=str(log))
    r = run(cfg, "-v", "-f", USER, "r@example.test")
    assert r.returncode == 0, r.stderr
    srv.tokens[USER] = "other"  # a refused token: the retry path is traced too
    r2 = run(cfg, "-v", "-f", USER, "r@example.test")
    assert r2.returncode == 0, r2.stderr
    assert ep.count() == 2
    seen = r.stdout + r.stderr + r2.stdout + r2.stderr + log.read_bytes() + dump.read_bytes()
    assert b"AUTH" in seen and b"cid" not in b""  # the trace is there
    for secret in (b"rt-1-secret", b"cs-secret", b"at-1-secret", b"at-2-secret", b"Bearer"):
        # the evals print rt/cs: only their stdout has them, never argv or environ
        assert secret not in seen, secret


def test_passwordeval_still_gives_the_token(setup):
    run, srv, ep, state, config = setup
    srv.tokens[USER] = "from-script"
    cfg = config(oauth2_client_id=None, oauth2_token_endpoint=None, oauth2_refresh_token=None,
                 passwordeval="echo from-script")
    r = run(cfg)
    assert r.returncode == 0, r.stderr
    assert ep.count() == 0


def test_no_refresh_token_names_command(setup):
    run, srv, ep, state, config = setup
    r = run(config(oauth2_refresh_token=None))
    assert r.returncode == 78, r.stderr
    assert b"run 'bluearrow oauth2 authorize -a test'" in r.stderr


def test_check_reports_token_state(setup):
    run, srv, ep, state, config = setup
    cfg = config()
    r = run(cfg, cmd=("check",), input=b"")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout.decode()
    assert "no access token cached" in out
    assert "refresh token from the configuration" in out
    r = run(cfg, cmd=("check",), input=b"")
    out = r.stdout.decode()
    assert re.search(r"access token cached, valid for (59|60) min more", out), out
    assert "secret" not in out
    r = run(config(oauth2_refresh_token=None), cmd=("check",), input=b"")
    assert "run 'bluearrow oauth2 authorize -a test'" in r.stdout.decode()


def start_authorize(setup, *args, **keys):
    run, srv, ep, state, config = setup
    cfg = config(oauth2_refresh_token=None,
                 oauth2_authorize_endpoint=ep.url("/authorize"),
                 oauth2_device_endpoint=ep.url("/device"), **keys)
    env = dict(os.environ, XDG_STATE_HOME=str(state.parent.parent))
    return subprocess.Popen([bluearrow_path(), "oauth2", "authorize", "-C", cfg, "-a", "test",
                             "--timeout", "20"] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env), cfg


def read_url(p):
    for _ in range(20):
        line = p.stderr.readline().decode()
        m = re.search(r"(https://\S+)", line)
        if m:
            return m.group(1)
    raise AssertionError("no URL printed")


def browser(url, ep, code="code-1", state=None):
    """What the provider and the browser do: remember the PKCE challenge for the
    code, then redirect to the loopback address with the code and the state."""
    import urllib.parse
    import urllib.request
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert q["response_type"] == "code" and q["client_id"] == "cid"
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", q["redirect_uri"])
    ep.authorize(code, q["code_challenge"], q["redirect_uri"])
    target = q["redirect_uri"] + "?" + urllib.parse.urlencode(
        {"code": code, "state": state or q["state"]})
    try:
        with urllib.request.urlopen(target, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_authorize_code_flow_with_pkce(setup):
    run, srv, ep, state, config = setup
    p, cfg = start_authorize(setup)
    url = read_url(p)
    assert url.startswith(ep.url("/authorize") + "?")
    assert browser(url, ep, state="forged") == 400  # another state is ignored
    assert browser(url, ep) == 200
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert out == b""
    grant = ep.requests[-1][1]
    assert grant["grant_type"] == "authorization_code" and "code_verifier" in grant
    stored = state / "test.refresh"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stored.read_text() == "rt-1-rotated\n"
    assert b"rt-1-rotated" not in err and b"code-1" not in err
    # the access token of the exchange is cached: sending needs no request
    n = ep.count()
    r = run(cfg)
    assert r.returncode == 0, r.stderr
    assert ep.count() == n


def test_authorize_code_flow_refuses_a_wrong_verifier(setup):
    run, srv, ep, state, config = setup
    p, cfg = start_authorize(setup)
    url = read_url(p)
    import urllib.parse
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    browser(url, ep)
    ep.codes["code-1"] = ("not-the-challenge", q["redirect_uri"])  # the endpoint's check fails
    out, err = p.communicate(timeout=20)
    assert p.returncode == 77, err
    assert not (state / "test.refresh").exists()


def test_authorize_device_flow_print(setup):
    run, srv, ep, state, config = setup
    ep.device_script = ["pending", "slow_down", "ok"]
    p, cfg = start_authorize(setup, "--device", "--print")
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert b"WDJB-MJHT" in err and ep.url("/activate").encode() in err
    assert out == b"rt-1-rotated\n"
    assert not (state / "test.refresh").exists()  # --print stores nothing
    polls = ep.device_polls
    assert len(polls) == 3
    assert polls[1] - polls[0] >= 0.9            # the interval (1 s)
    assert polls[2] - polls[1] >= 5.9            # slow_down adds 5 s (RFC 8628 §3.5)
    assert b"dev-code-secret" not in err + out


def test_authorize_device_flow_expired(setup):
    run, srv, ep, state, config = setup
    ep.device_script = ["expired"]
    p, cfg = start_authorize(setup, "--device")
    out, err = p.communicate(timeout=30)
    assert p.returncode == 77, err
    assert b"expired" in err


def test_secrets_refused_on_the_command_line(setup):
    run, srv, ep, state, config = setup
    cfg = config()
    r = run(cfg, "--oauth2-refresh-token=x", "-f", USER, "r@example.test")
    assert r.returncode == 64, r.stderr


def test_concurrent_sends_refresh_once(setup):
    run, srv, ep, state, config = setup
    ep.delay = 1  # the first refresh is slow: the others wait for its lock
    ep.rotate = True
    cfg = config()
    env = dict(os.environ, XDG_STATE_HOME=str(state.parent.parent))
    msg = state.parent.parent.parent / "msg"
    msg.write_bytes(MSG)
    procs = []
    for _ in range(4):  # all started before any finishes: each has its message at once
        with open(msg, "rb") as f:
            procs.append(subprocess.Popen([bluearrow_path(), "sendmail", "-C", cfg, "-f", USER,
                                           "r@example.test"], stdin=f, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, env=env))
    for p in procs:
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
    assert ep.count() == 1
    assert len(srv.txns) == 4


def test_unreadable_cache_is_replaced(setup):
    run, srv, ep, state, config = setup
    cfg = config()
    assert run(cfg).returncode == 0
    cache = state / "test"
    cache.write_bytes(b"x" * (70 * 1024))  # over the 64 KB a state file may have
    r = run(cfg)
    assert r.returncode == 0, r.stderr
    assert ep.count() == 2
    assert "at-2-secret" in cache.read_text()
