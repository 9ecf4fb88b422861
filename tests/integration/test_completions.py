"""Shell completions: subcommands, flags and the account names of the user's
configuration (through `bluearrow config list`), in bash and fish; zsh parses."""
import os
import shutil
import subprocess

import pytest

from conftest import build_dir

SRC = os.environ.get("BA_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
COMP = os.path.join(SRC, "completions")
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"


@pytest.fixture
def cfg(write_config):
    text = ("account work\nhost 127.0.0.1\nport 2525\nfrom w@example.test\n"
            "account home : work\nfrom h@example.test\naccount default : work\n")
    return write_config(text=text)


def env():
    e = dict(os.environ)
    e["PATH"] = build_dir() + ":" + e.get("PATH", "")
    return e


def bash_complete(line, func="_bluearrow"):
    script = """
source %s
source %s/bluearrow.bash
COMP_LINE=%s
COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<<"$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
%s
printf '%%s\\n' "${COMPREPLY[@]}"
""" % (BASH_COMPLETION, COMP, "'" + line + "'", func)
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env(),
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return sorted(w for w in r.stdout.split("\n") if w)


@pytest.mark.skipif(not os.path.exists(BASH_COMPLETION), reason="bash-completion missing")
def test_bash(cfg):
    assert bash_complete("bluearrow se") == ["send", "sendmail"]
    assert bash_complete("bluearrow check -C %s -a " % cfg) == ["default", "home", "work"]
    assert bash_complete("bluearrow send -C %s --account " % cfg) == ["default", "home", "work"]
    assert bash_complete("bluearrow sendmail -C %s -a h" % cfg) == ["home"]
    assert bash_complete("bluearrow-sendmail -b", "_bluearrow_sendmail") == ["-bm", "-bp"]
    assert bash_complete("bluearrow sendmail -R ") == ["full", "hdrs"]
    assert "--read-envelope-from" in bash_complete("bluearrow sendmail --r")
    assert bash_complete("bluearrow config ") == ["check", "init", "list", "show"]
    assert bash_complete("bluearrow oa") == ["oauth2"]
    assert bash_complete("bluearrow oauth2 ") == ["authorize"]
    assert bash_complete("bluearrow oauth2 authorize --d") == ["--device"]
    assert bash_complete("bluearrow oauth2 authorize -C %s -a w" % cfg) == ["work"]
    assert "--tls-trust-file" in bash_complete("bluearrow sendmail --tls")
    assert "--passwordeval" in bash_complete("bluearrow send --pass")
    assert bash_complete("bluearrow config init --ho") == ["--host"]
    assert "--attach" in bash_complete("bluearrow send --at")
    assert bash_complete("bluearrow send --dr") == ["--dry-run"]
    assert bash_complete("bluearrow send --no-p") == ["--no-progress"]
    assert bash_complete("bluearrow sendmail --pre") == ["--pretend"]
    assert "--progress" in bash_complete("bluearrow-sendmail --pro", "_bluearrow_sendmail")
    assert bash_complete("bluearrow ou") == ["outbox"]
    assert bash_complete("bluearrow outbox ") == ["flush", "list", "retry", "rm", "show"]
    assert bash_complete("bluearrow outbox list --j") == ["--json"]
    assert bash_complete("bluearrow outbox flush -C %s -a w" % cfg) == ["work"]
    assert bash_complete("bluearrow sendmail -od") == ["-odb", "-odi", "-odq"]
    assert bash_complete("bluearrow-tui --d", "_bluearrow_tui") == ["--drafts"]


def fish_complete(line):
    r = subprocess.run(["fish", "-c", "source %s/bluearrow.fish; complete -C %s" %
                        (COMP, "'" + line + "'")], capture_output=True, text=True, env=env(),
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return sorted(l.split("\t")[0] for l in r.stdout.splitlines() if l)


@pytest.mark.skipif(not shutil.which("fish"), reason="fish missing")
def test_fish(cfg):
    assert fish_complete("bluearrow se") == ["send", "sendmail"]
    assert fish_complete("bluearrow check -C %s -a " % cfg) == ["default", "home", "work"]
    assert fish_complete("bluearrow-sendmail -R ") == ["full", "hdrs"]
    assert fish_complete("bluearrow config ") == ["check", "init", "list", "show"]
    assert fish_complete("bluearrow oauth2 ") == ["authorize"]
    assert "--device" in fish_complete("bluearrow oauth2 authorize --")
    assert "--tls-trust-file" in fish_complete("bluearrow sendmail --tls")
    assert fish_complete("bluearrow outbox ") == ["flush", "list", "retry", "rm", "show"]
    assert fish_complete("bluearrow-tui --d") == ["--drafts"]


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh missing")
def test_zsh_parses():
    for f in ("_bluearrow", "_bluearrow-tui"):
        r = subprocess.run(["zsh", "-n", os.path.join(COMP, f)], capture_output=True)
        assert r.returncode == 0, r.stderr
