"""bluearrow send as mail -s is used: piped body, the account's from and aliases,
a message file, --dry-run (also sendmail --pretend), the progress bar and the
password prompt on the terminal."""
import email
import email.policy
import os
import pty
import re
import select
import subprocess
import sys
import time

from conftest import bluearrow_path


def ba(*args, input=None, timeout=40, **kw):
    return subprocess.run([bluearrow_path()] + [str(a) for a in args], capture_output=True,
                          input=input, timeout=timeout, **kw)


def parse(data):
    return email.message_from_bytes(data, policy=email.policy.default)


def test_send_body_from_piped_stdin(smtp_server, write_config):
    srv = smtp_server()
    cfg = write_config(srv, from_="me@example.test")
    r = ba("send", "-C", cfg, "--from", "me@example.test", "--to", "you@example.test",
           "--subject", "disk",
           input=b"Filesystem Size\n/dev/sda1 20G\n")
    assert r.returncode == 0, r.stderr
    m = parse(srv.wait_txn().data)
    assert m.get_body(("plain",)).get_content().replace("\r\n", "\n") == \
        "Filesystem Size\n/dev/sda1 20G\n"


def test_send_empty_stdin_gives_empty_body(smtp_server, write_config):
    srv = smtp_server()
    cfg = write_config(srv, from_="me@example.test")
    r = ba("send", "-C", cfg, "--from", "me@example.test", "--to", "you@example.test",
           "--subject", "x", input=b"")
    assert r.returncode == 0, r.stderr
    m = parse(srv.wait_txn().data)
    assert m.get_body(("plain",)).get_content().strip() == ""


def test_send_from_defaults_to_the_account(smtp_server, write_config):
    srv = smtp_server()
    cfg = write_config(srv, from_="me@example.test", from_full_name="Me Example")
    r = ba("send", "-C", cfg, "--to", "you@example.test", "--subject", "x", input=b"hi\n")
    assert r.returncode == 0, r.stderr
    txn = srv.wait_txn()
    assert txn.mail_from == "me@example.test"
    m = parse(txn.data)
    assert m["From"].addresses[0].addr_spec == "me@example.test"
    assert m["From"].addresses[0].display_name == "Me Example"


def test_send_local_name_through_aliases(smtp_server, write_config, tmp_path):
    srv = smtp_server()
    aliases = tmp_path / "aliases"
    aliases.write_text("root: admin@example.test, ops@example.test\n")
    cfg = write_config(srv, from_="me@example.test", aliases=str(aliases))
    r = ba("send", "-C", cfg, "--to", "root", "--subject", "x", input=b"hi\n")
    assert r.returncode == 0, r.stderr
    txn = srv.wait_txn()
    assert sorted(txn.accepted_rcpts) == ["admin@example.test", "ops@example.test"]


def test_send_local_name_without_aliases_is_a_clear_error(smtp_server, write_config):
    srv = smtp_server()
    cfg = write_config(srv, from_="me@example.test")
    r = ba("send", "-C", cfg, "--to", "root", "--subject", "x", input=b"hi\n")
    assert r.returncode == 64
    err = r.stderr.decode()
    assert "bluearrow send" in err and "'root'" in err and "aliases" in err
    assert srv.conns == []


def test_send_errors_name_send_and_missing_value(write_config, smtp_server):
    srv = smtp_server()
    cfg = write_config(srv, from_="me@example.test")
    r = ba("send", "-C", cfg, "--to", "you@example.test", "--attach", input=b"")
    assert r.returncode == 64
    err = r.stderr.decode()
    assert "bluearrow send" in err and "compose" not in err.split("\n")[0]
    assert "option '--attach' needs a value" in err
    r = ba("send", "-C", cfg, "--to", "you@example.test", "--bogus", input=b"")
    assert r.returncode == 64 and "bluearrow send: unknown option '--bogus'" in r.stderr.decode()


MSG = (b"From: Me <me@example.test>\nTo: you@example.test\nBcc: hidden@example.test\n"
       b"Subject: file\n\nbody\n.\nafter the dot\n")


def test_send_message_file_as_sendmail_t_i(smtp_server, write_config, tmp_path):
    srv = smtp_server()
    cfg = write_config(srv, from_="me@example.test")
    f = tmp_path / "m.eml"
    f.write_bytes(MSG)
    r = ba("send", "-C", cfg, f, input=b"")
    assert r.returncode == 0, r.stderr
    txn = srv.wait_txn()
    assert txn.accepted_rcpts == ["you@example.test", "hidden@example.test"]
    assert b"hidden@" not in txn.data and b"after the dot" in txn.data
    r = ba("send", "-C", cfg, "-", input=MSG)
    assert r.returncode == 0, r.stderr
    assert b"after the dot" in srv.wait_txn().data
    r = ba("send", "-C", cfg, "--to", "x@example.test", f)
    assert r.returncode == 64 and b"cannot be combined" in r.stderr


def test_dry_run_connects_to_nothing_and_shows_no_bcc(smtp_server, write_config, tmp_path):
    srv = smtp_server()
    marker = tmp_path / "evaluated"
    cfg = write_config(srv, from_="me@example.test", auth="plain", user="user",
                       passwordeval="touch %s; echo password" % marker)
    for run in (lambda: ba("send", "-C", cfg, "--dry-run", "--to", "you@example.test",
                           "--bcc", "hidden@example.test", "--subject", "dry", input=b"hi\n"),
                lambda: ba("sendmail", "-C", cfg, "--pretend", "-t", input=MSG),
                lambda: ba("sendmail", "-C", cfg, "--dry-run", "-t", input=MSG)):
        r = run()
        assert r.returncode == 0, r.stderr
        out = r.stdout.decode()
        assert re.search(r"^account   (test|default) \(%s:\d+\)$" % re.escape(cfg), out, re.M)
        assert "127.0.0.1:%d" % srv.port in out and "auth as 'user'" in out
        assert "password" not in out
        assert "from      <me@example.test>" in out
        assert "to        <you@example.test>" in out and "to        <hidden@example.test>" in out
        header = out.split("\nheader\n", 1)[1]
        assert "To: you@example.test" in header
        assert "bcc" not in header.lower() and "hidden" not in header
    time.sleep(0.2)
    assert srv.conns == []
    assert not marker.exists()


def big_message(n=20 << 20):
    line = b"x" * 76 + b"\n"
    return (b"From: me@example.test\nTo: you@example.test\nSubject: big\n\n" +
            line * (n // len(line)))


def test_progress_forced_and_quiet_by_default(smtp_server, write_config):
    srv = smtp_server()
    cfg = write_config(srv, from_="me@example.test")
    msg = big_message()
    r = ba("sendmail", "-C", cfg, "--progress", "-t", input=msg, timeout=120)
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    frames = [f for f in err.split("\r") if f.strip()]
    assert err.endswith("\n")
    assert frames[-1].lstrip().startswith("100%") and "MB/s" in frames[-1]
    assert len(frames) >= 2 and any(not f.lstrip().startswith("100%") for f in frames)
    srv.wait_txn()
    r = ba("sendmail", "-C", cfg, "-t", input=msg, timeout=120)
    assert r.returncode == 0 and r.stderr == b""
    r = ba("send", "-C", cfg, "--progress", "--to", "you@example.test", "--subject", "big",
           input=msg, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "100%" in r.stderr.decode()


def run_in_pty(argv, answer=None, timeout=60):
    """Runs argv with a new pty as its controlling terminal; types answer after
    the password prompt.  Returns (exit status, everything the terminal showed)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    out = b""
    typed = False
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if answer is not None and not typed and b"password for " in out:
            time.sleep(0.2)  # let the child turn echo off (it does so before the prompt)
            os.write(fd, answer)
            typed = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def test_progress_by_default_on_a_terminal(smtp_server, write_config, tmp_path):
    srv = smtp_server()
    cfg = write_config(srv, from_="me@example.test")
    f = tmp_path / "big.eml"
    f.write_bytes(big_message())
    code, out = run_in_pty([bluearrow_path(), "send", "-C", cfg, str(f)])
    assert code == 0, out
    assert b"100%" in out and b"\r" in out
    srv.wait_txn()
    small = tmp_path / "small.eml"
    small.write_bytes(MSG)
    code, out = run_in_pty([bluearrow_path(), "send", "-C", cfg, str(small)])
    assert code == 0 and out == b"", out


def test_password_prompt_on_the_terminal(smtp_server, write_config):
    srv = smtp_server(starttls=True, auth=["PLAIN"], auth_require_tls=True)
    cfg = write_config(srv, tls=True, tls_starttls=True, auth="plain", user="user",
                       from_="me@example.test")
    code, out = run_in_pty([bluearrow_path(), "send", "-C", cfg, "--to", "you@example.test",
                            "--subject", "x", "--body", "/dev/null"], answer=b"password\n")
    assert code == 0, out
    assert b"password for user at 127.0.0.1: " in out
    assert out.count(b"password") == 1  # the prompt's word; the typed one is not echoed
    txn = srv.wait_txn()
    assert txn.tls and txn.authenticated


def test_no_prompt_without_a_terminal(smtp_server, write_config):
    srv = smtp_server(starttls=True, auth=["PLAIN"], auth_require_tls=True)
    cfg = write_config(srv, tls=True, tls_starttls=True, auth="plain", user="user",
                       from_="me@example.test")
    r = ba("sendmail", "-C", cfg, "you@example.test", input=MSG, start_new_session=True)
    assert r.returncode == 78
    err = r.stderr.decode()
    assert "password for" not in err and "passwordeval" in err
    assert srv.conns == []
