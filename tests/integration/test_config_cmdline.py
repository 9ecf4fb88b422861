"""An account on the command line (msmtp's --host=H --port=N ...): with no
configuration file it is the account, with one it overrides the chosen
account's keys; `bluearrow config init` writes a first file; unknown keys
and accounts get a "did you mean"."""
import os
import socket
import stat
import subprocess

from conftest import bluearrow_path

HDR = b"From: a@example.test\nSubject: s\nDate: Sun, 29 Nov 2026 00:00:00 +0000\n" \
      b"Message-ID: <cmdline.1@example.test>\n\nbody\n"


def env_without_config(tmp_path):
    e = {k: v for k, v in os.environ.items()
         if k not in ("BLUEARROW_CONFIG", "XDG_CONFIG_HOME")}
    e["HOME"] = str(tmp_path)
    return e


def run(args, tmp_path, input=b"", env=None):
    return subprocess.run([bluearrow_path()] + args, input=input, capture_output=True,
                          timeout=30, env=env or env_without_config(tmp_path))


def test_no_file_host_and_port_make_the_account(smtp_server, tmp_path):
    srv = smtp_server()
    log = tmp_path / "log"
    r = run(["sendmail", "--host=127.0.0.1", "--port", str(srv.port), "--tls=off",
             "--domain=client.example.test", "--timeout=10", "--protocol=smtp",
             "--logfile=%s" % log, "-f", "a@example.test", "-i", "b@example.test"],
            tmp_path, input=HDR)
    assert r.returncode == 0, r.stderr
    txn = srv.wait_txn()
    assert txn.mail_from == "a@example.test" and txn.accepted_rcpts == ["b@example.test"]
    assert "host=127.0.0.1" in log.read_text()


def test_send_takes_the_same_keys(smtp_server, tmp_path):
    srv = smtp_server()
    r = run(["send", "--host", "127.0.0.1", "--port=%d" % srv.port, "--from", "a@example.test",
             "--to", "b@example.test", "--subject", "hi", "--body", "-"], tmp_path,
            input=b"x\n")
    assert r.returncode == 0, r.stderr
    assert srv.wait_txn().accepted_rcpts == ["b@example.test"]


def test_options_override_the_file(smtp_server, write_config, tmp_path):
    srv = smtp_server()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    cfg = write_config(text="account test\nhost 192.0.2.1\nport %d\nfrom a@example.test\n"
                            "tls on\ntls_starttls on\ntimeout 10\naccount default : test\n" % dead)
    r = run(["sendmail", "-C", cfg, "--host=127.0.0.1", "--port=%d" % srv.port, "--tls",
             "--tls=off", "-i", "b@example.test"], tmp_path, input=HDR)
    assert r.returncode == 0, r.stderr
    assert srv.wait_txn().accepted_rcpts == ["b@example.test"]
    # a bad value is the file's error, naming the command line
    r = run(["sendmail", "-C", cfg, "--port=abc", "-i", "b@example.test"], tmp_path, input=HDR)
    assert r.returncode == 78 and b"command line: invalid value 'abc' for 'port'" in r.stderr
    # a password never goes on a command line
    r = run(["sendmail", "-C", cfg, "--password=x", "-i", "b@example.test"], tmp_path, input=HDR)
    assert r.returncode == 64, r.stderr


def test_no_file_no_host_says_how_to_create_one(tmp_path):
    r = run(["sendmail", "-i", "b@example.test"], tmp_path, input=HDR)
    assert r.returncode == 78
    assert b"no configuration file found" in r.stderr
    assert b"bluearrow config init" in r.stderr and b"--host" in r.stderr


def test_config_init(tmp_path):
    e = env_without_config(tmp_path)
    e["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    e["USER"] = "joe"
    r = run(["config", "init", "-a", "work", "--host", "smtp.example.org", "--user", "joe",
             "--passwordeval", "pass show mail"], tmp_path, env=e)
    assert r.returncode == 0, r.stderr
    path = tmp_path / "xdg" / "bluearrow" / "config"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "host smtp.example.org\n" in text and "port 587\n" in text
    assert "from joe@%s\n" % socket.gethostname() in text   # guessed, not asked
    assert 'passwordeval "pass show mail"\n' in text and "account default : work\n" in text
    assert text.count("\n#") >= 5   # commented
    r = run(["config", "check"], tmp_path, env=e)
    assert r.returncode == 0 and b"default 'work'" in r.stdout, r.stderr
    # never overwritten
    before = path.read_bytes()
    r = run(["config", "init", "--host", "other.example.org"], tmp_path, env=e)
    assert r.returncode == 73 and b"not overwritten" in r.stderr
    assert path.read_bytes() == before
    # -C FILE, --from, implicit TLS
    other = tmp_path / "other"
    r = run(["config", "init", "-C", str(other), "--from", "me@example.org", "--host", "h",
             "--tls-starttls=off"], tmp_path, env=e)
    assert r.returncode == 0, r.stderr
    t = other.read_text()
    assert "from me@example.org\n" in t and "port 465\n" in t and "tls_starttls off\n" in t
    # a key the parser refuses is refused before anything is written
    r = run(["config", "init", "-C", str(tmp_path / "bad"), "--port=x"], tmp_path, env=e)
    assert r.returncode == 78 and not (tmp_path / "bad").exists()


def test_did_you_mean(write_config, tmp_path):
    cfg = write_config(text="account work\nhost h\ntls_trustfile /x\n")
    r = run(["config", "check", "-C", cfg], tmp_path)
    assert r.returncode == 78
    assert b"unknown key 'tls_trustfile' (did you mean 'tls_trust_file'?)" in r.stderr
    cfg = write_config(text="account work\nhost h\naccount home\nhost h\n", name="c2")
    r = run(["sendmail", "-C", cfg, "-a", "wrok", "-i", "b@example.test"], tmp_path, input=HDR)
    assert r.returncode == 78
    assert b"no account 'wrok'" in r.stderr
    assert b"(did you mean 'work'?; accounts: work, home)" in r.stderr
    r = run(["sendmail", "-C", cfg, "-a", "zzzzzz", "-i", "b@example.test"], tmp_path, input=HDR)
    assert b"(accounts: work, home)" in r.stderr


def test_misspelt_option_did_you_mean(tmp_path):
    r = run(["sendmail", "--tls-trustfile=/x", "-i", "b@example.test"], tmp_path, input=HDR)
    assert r.returncode == 64
    assert b"unknown option '--tls-trustfile' (did you mean '--tls-trust-file'?)" in r.stderr
    r = run(["send", "--hots", "h", "--from", "a@example.test", "--to", "b@example.test"],
            tmp_path)
    assert r.returncode == 64 and b"(did you mean '--host'?)" in r.stderr
