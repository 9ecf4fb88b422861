"""bluearrow(1) documents what `bluearrow help` lists: every subcommand and
every option of each `bluearrow help CMD`; the shell completions offer the
same subcommands."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import bluearrow_path

SRC = os.environ.get("BA_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
MAN = os.path.join(SRC, "man", "bluearrow.1")


def help_text(*args):
    r = subprocess.run([bluearrow_path(), "help"] + list(args), capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout


def commands():
    text = help_text()
    block = text.split("commands:", 1)[1].split("\n\n", 1)[0]
    cmds = [l.split()[0] for l in block.splitlines() if l.strip()]
    assert "sendmail" in cmds and "help" in cmds
    return cmds


def options(text):
    # "-C", "--file", "-oXXX", "--tls-trust-file", "-d[X]" -> "-d", "--KEY=VALUE" -> "--KEY"
    opts = set(re.findall(r"(?:^|[\s,\[(])(--?[A-Za-z0-9][A-Za-z0-9-]*)", text))
    return {o for o in opts if not re.fullmatch(r"-\d+", o)}


def man_text():
    src = open(MAN).read()
    rendered = ""
    if shutil.which("man"):
        env = dict(os.environ, MANWIDTH="1000", LC_ALL="C", MAN_KEEP_FORMATTING="")
        r = subprocess.run(["man", "-l", MAN], capture_output=True, text=True, env=env,
                           timeout=30)
        rendered = r.stdout
    # the roff source with its escapes undone, for what rendering may hyphenate
    plain = re.sub(r"\\f[BIRP]", "", src).replace("\\-", "-")
    return (rendered + "\n" + plain).lower()


def test_every_subcommand_and_option_is_in_the_man_page():
    man = man_text()
    missing = []
    for cmd in commands():
        if not re.search(r"(?m)^\.?\S*\s*\b%s\b" % cmd, open(MAN).read()) and cmd not in man:
            missing.append(cmd)
        for opt in options(help_text(cmd)):
            if opt.lower() not in man:
                missing.append("%s %s" % (cmd, opt))
    for opt in options(help_text().split("commands:")[0]):
        if opt.lower() not in man:
            missing.append(opt)
    assert not missing, "not in man/bluearrow.1: %s" % ", ".join(sorted(missing))


def test_each_subcommand_has_its_entry():
    src = open(MAN).read()
    listed = re.findall(r"(?m)^\.B (\w+)(?: |$)", src.split(".SS Commands", 1)[1].split(".SH", 1)[0])
    assert set(commands()) <= set(listed), set(commands()) - set(listed)


def test_completions_offer_the_same_subcommands():
    cmds = set(commands())
    bash = open(os.path.join(SRC, "completions", "bluearrow.bash")).read()
    m = re.search(r'local commands="([^"]*)"', bash)
    assert m and set(m.group(1).split()) == cmds
    fish = open(os.path.join(SRC, "completions", "bluearrow.fish")).read()
    m = re.search(r"(?m)^set -l commands (.*)$", fish)
    assert m and set(m.group(1).split()) == cmds
    assert {c for c in re.findall(r"-a (\w+) -d", fish)} >= cmds
    zsh = open(os.path.join(SRC, "completions", "_bluearrow")).read()
    block = zsh.split("commands=(", 1)[1].split(")\n", 1)[0]
    assert set(re.findall(r"'(\w+):", block)) == cmds
