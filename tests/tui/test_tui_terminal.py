"""Every terminal: 80x24, 40x12 and 20x5 layouts, "terminal too small" below, no crash at 1x1,
the same screen after resizes, NO_COLOR and TERM=vt100 readable, Korean laid out by cell
width, rebindable keys, the help screen."""
import os
import re
import time

import tuilib

NO_SERVER = 9
KOREAN = "한국어 제목입니다 가나다라마바사아자차카타파하"


def compose(t):
    t.field("t", "bob@example.test")
    t.field("s", KOREAN)
    t.wait_for("\n Subject: " + KOREAN[:5])   # the prompt closed (open, the row has ">")


def test_resize_100x30_20x5_1x1_100x30(tui):
    t = tui(NO_SERVER, width=100, height=30)
    compose(t)
    t.keys("k", "k", "k", "k")   # focus on From
    before = t.wait_for("[saved]")
    t.resize(20, 5)
    s = t.wait_for(lambda s: len(s.split("\n")[0].rstrip()) <= 20 and "From:" in s)
    rows = s.split("\n")
    assert "From: \"Me" in s                  # the focused field
    assert any(r.startswith("-- Compose") for r in rows)   # the status line
    t.resize(19, 5)
    t.wait_for("terminal")
    t.resize(1, 1)
    time.sleep(0.5)
    assert t.alive()
    t.resize(100, 30)
    try:
        t.wait_for(lambda s: s == before)
    except AssertionError:
        import difflib
        raise AssertionError("\n".join(difflib.unified_diff(before.split("\n"),
                                                             t.screen().split("\n"))))
    assert t.alive()


def test_40x12_usable(tui):
    t = tui(NO_SERVER, width=40, height=12)
    compose(t)
    s = t.screen()
    rows = s.split("\n")
    assert all(len(r) <= 40 for r in rows)
    for label in ("From:", "To: bob@example.test", "Subject:", "Body:"):
        assert label in s, s


def test_wide_characters_by_cell_width(tui):
    t = tui(NO_SERVER, width=31, height=12)
    compose(t)
    s = t.screen()
    row = [r for r in s.split("\n") if "Subject:" in r][0]
    # 31 cells: " Subject: " is 10, then what fits in 21 cells (a syllable is 2)
    assert row.rstrip() == " Subject: " + tuilib.fit(KOREAN, 21).rstrip()
    # at 21 cells the next syllable would straddle the edge: it is left out, not cut
    assert tuilib.fit(KOREAN, 21) == tuilib.fit(KOREAN, 20)
    # the prompt scrolls by cells too and keeps the cursor visible at the end
    t.keys("s")
    s = t.wait_for(lambda s: s.rstrip("\n").split("\n")[-1].startswith("Subject: "))
    last = s.rstrip("\n").split("\n")[-1]
    assert last.startswith("Subject: ") and KOREAN[-1] in last


def test_no_color_and_vt100_keep_states_readable(tui, tmp_path):
    for i, env in enumerate(({"NO_COLOR": "1"}, {"TERM": "vt100"})):
        t = tui(NO_SERVER, name="nc%d" % i, env=env)
        compose(t)
        t.keys("o")
        s = t.wait_for("-- Outbox")
        esc = t.screen(escapes=True)
        # no colour sequences (SGR 30-37, 38;5, 90-97); reverse video and bold are allowed
        assert not re.search(r"\x1b\[[0-9;]*(3[0-8]|9[0-7])[;m]", esc), repr(esc[:400])
        assert "-- Outbox" in s
        t.close()


def test_colour_only_adds_to_words(tui):
    t = tui(NO_SERVER, env={"TERM": "xterm-256color"})   # colours on
    compose(t)
    t.keys("a")
    t.type("/nonexistent/file")
    t.keys("Enter")
    s = t.wait_for("cannot attach")
    assert "No such file or directory" in s


def test_keys_are_rebindable_and_help_lists_them(tui):
    settings = "set undo_seconds 0\nbind compose ^S edit-subject\nbind compose s noop\n"
    t = tui(NO_SERVER, settings=settings)
    t.keys("C-s")
    t.type("rebound")
    t.keys("Enter")
    t.wait_for("Subject: rebound")
    t.keys("?")
    s = t.wait_for("Keys of the compose screen")
    assert re.search(r"\^S\s+edit-subject", s)
    assert not re.search(r"\n  s\s+edit-subject", s)
    t.keys("q")
    t.wait_for("-- Compose")


def test_bad_settings_file_names_the_line(tui):
    t = tui(NO_SERVER, settings="set undo_seconds 10\nbind compose ^S no-such-function\n")
    t.wait_for(lambda s: not t.alive(), timeout=5)
    assert "tui:2: unknown function 'no-such-function'" in t.stderr()
    # (its exit status, 78, is not asserted: tmux does not always keep a pane's status)


def test_keys_typed_quickly_are_each_handled_once(tui):
    t = tui(NO_SERVER)
    t.keys("s")
    text = "fast typing " * 8
    t.type(text)
    t.keys("Enter")
    t.wait_for("Subject: " + text.strip()[:60])
    t.keys("o")   # a command key after an accepted prompt is a command, not text
    t.wait_for("-- Outbox")


def test_random_keys_and_resizes_never_crash(tui):
    """A monkey: random keys (commands, text, control and function keys, Korean) and resizes
    for a few seconds; the program must stay alive and, in a sanitizer build, report nothing
    (close() checks).  q is left out: quitting is not what is tested (tmux does not always
    keep the exit status of a pane, so a quit could not be told from a crash)."""
    import random
    rnd = random.Random(int(os.environ.get("BA_TUI_SEED", "4242")))
    keys = list("ftcbseaDuRyLpPorjkmdv!?=*- ") + ["C-t", "C-l", "C-c", "C-x", "C-u", "C-w",
                                                 "C-a", "C-e", "C-k", "C-g", "Enter", "Escape",
                                                 "Tab", "BSpace", "DC", "Up", "Down", "Left",
                                                 "Right", "Home", "End", "NPage", "PPage"]
    words = ["a@b.test", "한국어", "x*", "/tmp/", "+1h", "text/plain", "n", "y", "c"]
    t = tui(NO_SERVER, settings="set undo_seconds 1\n")
    deadline = time.monotonic() + 6 * tuilib.SLOW
    done = []
    while time.monotonic() < deadline:
        r = rnd.random()
        if r < 0.05:
            size = (rnd.choice([1, 5, 19, 20, 40, 80, 120]), rnd.choice([1, 4, 5, 12, 24, 40]))
            t.resize(*size)
            done.append(size)
        elif r < 0.25:
            done.append(rnd.choice(words))
            t.type(done[-1])
        else:
            done.append(rnd.choice(keys))
            t.keys(done[-1])
        if rnd.random() < 0.2:
            assert t.alive(), "died after %s:\n%s" % (done[-12:], t.sanitizer_reports()[:6000])
    t.resize(80, 24)
    t.keys("Escape", "Escape", "C-l")
    t.wait_for("--")
    assert t.alive(), t.sanitizer_reports()[:6000]
