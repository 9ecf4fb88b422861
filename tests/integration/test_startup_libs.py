"""What the dynamic loader brings into each path: the sendmail path must not map libmagic (nor
libcurl or ncurses), which only a content sniff needs (libcurl: only fetching an OAuth2 token or an
MTA-STS policy; libgnutls-dane: only a DANE check); compose still sniffs attachment types,
loading libmagic on first use.  Read from the loader itself (LD_DEBUG=files names every shared
object it opens, whether needed at start or dlopen()ed later)."""
import ctypes.util
import os
import subprocess

import pytest

from conftest import bluearrow_path

pytestmark = pytest.mark.skipif(os.environ.get("BA_VALGRIND") == "1",
                                reason="LD_DEBUG would describe valgrind, not bluearrow")

GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\0" * 30
FROM = "Sender <sender@example.org>"


def run_traced(args, stdin=b""):
    env = dict(os.environ, LD_DEBUG="files")
    r = subprocess.run([bluearrow_path()] + [str(a) for a in args], input=stdin,
                       capture_output=True, env=env, timeout=40)
    opened = [line for line in r.stderr.decode(errors="replace").splitlines()
              if "file=" in line and ("needed by" in line or "dynamically loaded by" in line)]
    return r, "\n".join(opened)


def test_not_linked():
    r = subprocess.run(["readelf", "-d", bluearrow_path()], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("readelf not available")
    needed = [l for l in r.stdout.splitlines() if "(NEEDED)" in l]
    assert needed, r.stdout
    for lib in ("libmagic", "libcurl", "ncurses", "libtinfo", "libgnutls-dane", "libunbound"):
        assert not any(lib in l for l in needed), needed


def test_sendmail_does_not_load_libmagic(smtp_server, write_config):
    srv = smtp_server()
    cfg = write_config(srv, from_="me@example.test")
    msg = (b"From: me@example.test\nTo: you@example.test\nSubject: s\n\n" +
           b"a line of text\n" * 60)
    r, opened = run_traced(["sendmail", "-C", cfg, "-i", "you@example.test"], msg)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    assert srv.wait_txn().accepted_rcpts == ["you@example.test"]
    assert "libgnutls" in opened  # the trace works: a library that is needed shows up
    # DANE's GnuTLS code (and the libunbound it links) only for direct delivery with TLSA
    for lib in ("libmagic", "libcurl", "ncurses", "libtinfo", "libgnutls-dane", "libunbound"):
        assert lib not in opened, opened


def test_compose_with_attach_type_does_not_load_libmagic(tmp_path):
    (tmp_path / "pic").write_bytes(GIF)
    r, opened = run_traced(["compose", "--from", FROM, "--to", "r@example.net",
                            "--attach", tmp_path / "pic", "--attach-type", "image/gif"])
    assert r.returncode == 0
    assert b"Content-Type: image/gif" in r.stdout
    assert "libmagic" not in opened, opened


def test_compose_sniffs_with_libmagic_loaded_on_demand(tmp_path):
    (tmp_path / "pic").write_bytes(GIF)  # no extension: only the content tells
    r, opened = run_traced(["compose", "--from", FROM, "--to", "r@example.net",
                            "--attach", tmp_path / "pic"])
    assert r.returncode == 0
    assert b"Content-Type: image/gif" in r.stdout
    if ctypes.util.find_library("magic"):  # else the extension decides (mime.h)
        assert "libmagic.so.1" in opened and "dynamically loaded by" in opened, opened


def test_oauth2_loads_libcurl_only_to_fetch_a_token(smtp_server, write_config, tls_certs,
                                                    tmp_path, monkeypatch):
    """An account whose token comes from bluearrow's OAuth2 module: the send that
    must fetch a token loads libcurl with dlopen(); the next one, with the token
    cached, maps no libcurl, like a send without OAuth2."""
    from servers.oauth2 import TokenEndpoint
    user = "u@example.test"
    srv = smtp_server(starttls=True, auth=["XOAUTH2"], tokens={})
    ep = TokenEndpoint(tls_certs, refresh_tokens={"rt"},
                       on_token=lambda t: srv.tokens.__setitem__(user, t)).start()
    try:
        cfg = write_config(srv, tls="on", tls_starttls="on", auth="xoauth2", user=user,
                           oauth2_client_id="cid", oauth2_token_endpoint=ep.url("/token"),
                           oauth2_refresh_token="rt")
        msg = b"From: u@example.test\nTo: r@example.test\nSubject: s\n\nbody\n"
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # run_traced's env
        r, opened = run_traced(["sendmail", "-C", cfg, "-f", user, "r@example.test"], msg)
        assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
        assert "libcurl-gnutls.so.4" in opened and "dynamically loaded by" in opened, opened
        r, opened = run_traced(["sendmail", "-C", cfg, "-f", user, "r@example.test"], msg)
        assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
        assert "libgnutls" in opened
        assert "libcurl" not in opened, opened
        assert ep.count() == 1
    finally:
        ep.stop()
