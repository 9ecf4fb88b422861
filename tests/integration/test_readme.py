"""The README's examples run as they are written.

Every ```sh block of README.md is taken line by line (continuations joined)
and each command is run by /bin/sh with the build directory first on PATH
(`bluearrow`, `sendmail`), in a directory holding the files the examples
name, with $BLUEARROW_CONFIG pointing at a configuration whose accounts
`work` and `default` submit to a local test server.  Commands that change
the machine or need the network outside this test (installing the link, git,
the quick start's scripts) are listed in SKIP and covered elsewhere
(test_sendmail_real_callers.py runs git send-email; CI runs scripts/check).
The configuration block of the README must pass `bluearrow config check`."""
import os
import subprocess

import pytest

from conftest import build_dir

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "..", "..", "README.md")

# commands that are not run here, and why
SKIP = {
    "scripts/": "the quick start: CI runs scripts/check, scripts/demo has its own run",
    "sudo ln -s": "changes the machine",
    "git ": "git send-email: test_sendmail_real_callers.py",
    "cmake ": "the build: CI builds",
    "cd build": "the test suite: CI runs it",
}


def fenced_blocks():
    """(language, text) of every fenced block of README.md, in order."""
    blocks, lang, lines = [], None, []
    for line in open(README, encoding="utf-8").read().splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, lines = line[3:].strip(), []
            else:
                blocks.append((lang, "\n".join(lines) + "\n"))
                lang = None
        elif lang is not None:
            lines.append(line)
    return blocks


def readme_commands():
    cmds = []
    for lang, block in fenced_blocks():
        if lang != "sh":
            continue
        block = block.replace("\\\n", " ")
        pending = ""
        for line in block.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.endswith("|"):  # a pipeline continued on the next line
                pending += line + " "
                continue
            cmd = pending + line
            pending = ""
            if not any(cmd.startswith(k) for k in SKIP):
                cmds.append(cmd)
    return cmds


def readme_config():
    blocks = [b for lang, b in fenced_blocks() if not lang and "\naccount " in "\n" + b]
    assert blocks, "the README shows a configuration"
    return blocks[0]


@pytest.fixture
def sandbox(tmp_path, smtp_server):
    srv = smtp_server()
    (tmp_path / "q3.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    for name in ("minutes.txt", "news.txt", "reply.txt", "report.txt"):
        (tmp_path / name).write_text("text of %s\n" % name)
    (tmp_path / "news.html").write_text("<p>news</p>\n")
    (tmp_path / "export.bin").write_bytes(b"a,b\n1,2\n")
    (tmp_path / "figures.pdf").write_bytes(b"%PDF-1.4\n")
    (tmp_path / "draft.eml").write_text("From: me@example.org\nTo: you@example.net\n"
                                        "Subject: draft\n\nhello\n")
    aliases = tmp_path / "aliases"
    aliases.write_text("root: me@example.org\n")
    cfg = tmp_path / "config"
    cfg.write_text("defaults\nhost 127.0.0.1\nport %d\ntimeout 10\naliases %s\n"
                   "account work\nfrom me@example.org\naccount default : work\n"
                   % (srv.port, aliases))
    os.chmod(str(cfg), 0o600)
    env = dict(os.environ)
    env.update(PATH=os.path.abspath(build_dir()) + os.pathsep + env.get("PATH", ""),
               BLUEARROW_CONFIG=str(cfg), HOME=str(tmp_path), LANG="C.UTF-8")
    return srv, env, tmp_path


def test_readme_has_examples():
    cmds = readme_commands()
    assert len(cmds) >= 8, cmds
    assert any(c.startswith("bluearrow send") for c in cmds)
    assert any("sendmail -t -i" in c for c in cmds)


@pytest.mark.parametrize("cmd", readme_commands())
def test_readme_example_runs(cmd, sandbox):
    srv, env, cwd = sandbox
    r = subprocess.run(["/bin/sh", "-c", cmd], cwd=str(cwd), env=env, capture_output=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (cmd, r.stdout.decode(errors="replace"),
                               r.stderr.decode(errors="replace"))
    if "compose" in cmd and ">" not in cmd:
        assert r.stdout.startswith(b"From: ") or b"\nFrom: " in r.stdout
    if cmd.startswith("bluearrow send") and "--dry-run" not in cmd or "sendmail -t" in cmd:
        assert len(srv.messages) == 1, cmd
    if "--dry-run" in cmd or cmd.startswith("bluearrow check") or "compose" in cmd:
        assert srv.messages == [], cmd


def test_readme_configuration_parses(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text(readme_config())
    os.chmod(str(cfg), 0o600)
    r = subprocess.run([os.path.join(build_dir(), "bluearrow"), "config", "check", "-C", str(cfg)],
                       capture_output=True, timeout=30, env=dict(os.environ, HOME=str(tmp_path)))
    assert r.returncode == 0, r.stderr.decode()
