"""Real callers end to end through the bluearrow-sendmail link: git send-email
on a generated three-patch series, mutt's batch mode sending an attachment,
s-nail with mta=.  Each message must arrive intact; Bcc must not leak."""
import base64
import email
import email.policy
import os
import shutil
import subprocess

import pytest

from conftest import build_dir

LINK = os.path.join(build_dir(), "bluearrow-sendmail")

pytestmark = pytest.mark.skipif(not os.access(LINK, os.X_OK), reason="bluearrow-sendmail not built")


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 60)
    r = subprocess.run(cmd, **kw)
    assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    return r


def clean_env(tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "LANG": "C.UTF-8", "TMPDIR": str(tmp_path), "TERM": "dumb",
           "GIT_CONFIG_NOSYSTEM": "1"}
    return env


@pytest.mark.skipif(not shutil.which("git"), reason="git missing")
def test_git_send_email_three_patches(smtp_server, write_config, tmp_path):
    srv = smtp_server()
    cfg = write_config(srv, from_="dev@example.test")
    env = clean_env(tmp_path)
    repo = tmp_path / "repo"
    repo.mkdir()
    g = lambda *a: run(["git", "-C", str(repo)] + list(a), env=env)  # noqa: E731
    g("init", "-q")
    g("config", "user.name", "Dev Eloper")
    g("config", "user.email", "dev@example.test")
    for i in range(4):
        (repo / "file.txt").write_text("".join("line %d.%d\n" % (i, k) for k in range(5 + i)))
        g("add", "file.txt")
        g("commit", "-q", "-m", "change %d\n\nBody of change %d.\n.\nA lone dot above." % (i, i))
    out = tmp_path / "patches"
    g("format-patch", "-q", "-3", "-o", str(out))
    patches = sorted(str(p) for p in out.iterdir())
    assert len(patches) == 3
    run(["git", "-C", str(repo), "send-email", "--smtp-server=" + LINK,
         "--smtp-server-option=-C", "--smtp-server-option=" + cfg,
         "--to=list@example.test", "--bcc=hidden@example.test", "--confirm=never",
         "--no-validate", "--quiet", "--suppress-cc=all", "--from=Dev Eloper <dev@example.test>"] + patches, env=env)
    msgs = srv.messages
    assert len(msgs) == 3
    for txn, path in zip(msgs, patches):
        assert txn.mail_from == "dev@example.test"
        assert sorted(txn.accepted_rcpts) == ["hidden@example.test", "list@example.test"]
        assert b"hidden@example.test" not in txn.data
        m = email.message_from_bytes(txn.data, policy=email.policy.default)
        want = email.message_from_bytes(open(path, "rb").read(), policy=email.policy.default)
        assert m["Subject"] == want["Subject"]
        # the diff arrives byte for byte, the lone dot in the log message included
        body = m.get_payload(decode=True).replace(b"\r\n", b"\n")
        assert want.get_payload(decode=True).split(b"\n---\n")[1] in body
        assert b"\n.\n" in body


@pytest.mark.skipif(not shutil.which("git"), reason="git missing")
def test_git_send_email_readme_recipe_picks_the_from_account(smtp_server, write_config, tmp_path):
    """The README's recipe: no envelope sender configured; the From field chooses the account."""
    home, work = smtp_server(), smtp_server()
    cfg = write_config(text="account home\nhost 127.0.0.1\nport %d\nfrom me@home.test\n"
                            "account work\nhost 127.0.0.1\nport %d\nfrom dev@work.test\n"
                            "account default : home\n" % (home.port, work.port))
    env = clean_env(tmp_path)
    repo = tmp_path / "repo"
    repo.mkdir()
    g = lambda *a: run(["git", "-C", str(repo)] + list(a), env=env)  # noqa: E731
    g("init", "-q")
    g("config", "user.name", "Dev")
    g("config", "user.email", "dev@work.test")
    (repo / "f").write_text("x\n")
    g("add", "f")
    g("commit", "-q", "-m", "one")
    g("format-patch", "-q", "-1", "-o", str(tmp_path / "p"))
    g("config", "sendemail.sendmailcmd", LINK + " -C " + cfg)
    g("send-email", "--to=list@example.test", "--confirm=never", "--quiet",
      "--suppress-cc=all", str(next((tmp_path / "p").iterdir())))
    assert [t.mail_from for t in work.messages] == ["dev@work.test"]
    assert home.messages == []


@pytest.mark.skipif(not shutil.which("mutt"), reason="mutt missing")
def test_mutt_batch_with_attachment(smtp_server, write_config, tmp_path):
    srv = smtp_server()
    cfg = write_config(srv, from_="me@example.test")
    att = tmp_path / "report.bin"
    payload = bytes(range(256)) * 40
    att.write_bytes(payload)
    muttrc = tmp_path / "muttrc"
    # mutt's own default is "/usr/sbin/sendmail -oem -oi": -oi keeps a lone "." line data
    muttrc.write_text('set sendmail="%s -oem -oi -C %s"\nset from="Me <me@example.test>"\nset use_from=yes\n'
                      'set envelope_from=yes\nset record=""\nset charset="utf-8"\n'
                      'set send_charset="utf-8"\n' % (LINK, cfg))
    env = clean_env(tmp_path)
    run(["mutt", "-n", "-F", str(muttrc), "-s", "report", "-b", "boss@example.test",
         "-a", str(att), "--", "you@example.test"], input="see attached\n.\nend\n".encode(),
        env=env)
    txn = srv.wait_txn()
    assert txn.mail_from == "me@example.test"
    assert sorted(txn.accepted_rcpts) == ["boss@example.test", "you@example.test"]
    assert b"boss@example.test" not in txn.data
    m = email.message_from_bytes(txn.data, policy=email.policy.default)
    parts = list(m.iter_attachments())
    assert parts, txn.data[:2000]
    assert len(parts) == 1 and parts[0].get_filename() == "report.bin"
    assert parts[0].get_payload(decode=True) == payload
    assert "see attached\n.\nend" in m.get_body(("plain",)).get_content().replace("\r\n", "\n")


@pytest.mark.skipif(not shutil.which("s-nail"), reason="s-nail missing")
def test_s_nail_mta(smtp_server, write_config, tmp_path):
    srv = smtp_server()
    cfg = write_config(srv, from_="me@example.test")
    env = clean_env(tmp_path)
    env["MAILRC"] = "/dev/null"
    run(["s-nail", "-n", "-#", "-Smta=" + LINK, "-Smta-arguments=-C " + cfg,
         "-Sexpandaddr=restrict", "-r", "me@example.test", "-s", "s-nail test",
         "-b", "hidden@example.test", "you@example.test"],
        input="Grüße aus s-nail\n.\nlast line\n".encode(), env=env)
    txn = srv.wait_txn()
    assert txn.mail_from == "me@example.test"
    assert sorted(txn.accepted_rcpts) == ["hidden@example.test", "you@example.test"]
    assert b"hidden@" not in txn.data
    m = email.message_from_bytes(txn.data, policy=email.policy.default)
    assert m["Subject"] == "s-nail test"
    text = m.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.rstrip("\n") == "Grüße aus s-nail\n.\nlast line"
    _ = base64  # (payload checks above use the email package)
