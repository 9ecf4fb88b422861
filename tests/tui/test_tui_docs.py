"""bluearrow-tui(1) documents every function, default key, menu and setting of tui/keys.c,
and the README shows each screen."""
import os
import re

SRC = os.environ.get("BA_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")


def read(*path):
    with open(os.path.join(SRC, *path), encoding="utf-8") as f:
        return f.read()


def man_text():
    # roff escapes that matter here: "\-" is "-"
    return read("man", "bluearrow-tui.1").replace("\\-", "-")


def test_every_function_is_documented():
    keys = read("tui", "keys.c")
    names = re.findall(r'\[F_[A-Z_]+\] = \{ "([a-z-]+)"', keys)
    assert len(names) > 30
    man = man_text()
    for n in names:
        if n == "noop":
            assert "noop" in man
            continue
        assert re.search(r"\t%s\t" % re.escape(n), man), n


def test_every_default_key_is_documented():
    keys = read("tui", "keys.c")
    man = man_text()
    for menu, key, func in re.findall(r"\{ MENU_([A-Z]+), (K\('.+?'\)|K\(TUI_CTRL\('.'\)\)|FN\(KEY_[A-Z]+\)), F_([A-Z_]+) \}", keys):
        m = re.match(r"K\('(.+)'\)$", key)
        if m:
            name = {"\\r": "<Enter>", "\\n": None, " ": "<Space>"}.get(m.group(1), m.group(1))
        elif key.startswith("K(TUI_CTRL"):
            name = "^" + key[len("K(TUI_CTRL('")].upper()
        else:
            name = {"KEY_UP": "<Up>", "KEY_DOWN": "<Down>", "KEY_PPAGE": "<PageUp>",
                    "KEY_NPAGE": "<PageDown>", "KEY_HOME": "<Home>", "KEY_END": "<End>",
                    "KEY_ENTER": None}[key[3:-1]]
        if name is None:
            continue
        section = man.split(".SS %s" % menu.lower(), 1)[1].split(".TE", 1)[0]
        rows = [r for r in section.split("\n") if "\t" in r]
        assert any(name in r.split("\t")[0].replace(" ", "").split(",") for r in rows), \
            (menu, name, func)


def test_every_setting_is_documented():
    keys = read("tui", "keys.c")
    man = man_text()
    for s in set(re.findall(r'strcmp\(key, "([a-z_]+)"\)', keys)):
        assert ".BI \"set %s " % s in man or ".BR \"set %s " % s in man, s


def test_readme_shows_each_screen_and_the_demo():
    readme = read("README.md")
    for marker in ("-- Compose", "-- Outbox", "-- Drafts", "scripts/demo-tui"):
        assert marker in readme, marker
