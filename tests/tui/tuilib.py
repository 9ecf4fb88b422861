"""Drive bluearrow-tui black-box in tmux on a private socket (tmux -S ROOT/tmux.sock).

    def test_x(tui):
        t = tui(server)                 # a config with `account test` on the server's port
        t.keys("t"); t.type("b@y.test"); t.keys("Enter")
        t.wait_for("To: b@y.test")
        screen = t.screen()             # the visible text, one str per row

Each TUI gets a private HOME, XDG_DATA_HOME (drafts), XDG_STATE_HOME (outbox)
and XDG_CONFIG_HOME (the TUI settings file) under the test's tmp_path.
"""
import os
import shutil
import signal
import subprocess
import time

VALGRIND = os.environ.get("BA_VALGRIND") == "1"


def build_dir():
    return os.environ.get("BA_BUILD_DIR") or os.path.join(os.path.dirname(__file__), "..", "..",
                                                          "build")


def _sanitized():
    try:
        with open(os.path.join(build_dir(), "CMakeCache.txt")) as f:
            return "BA_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


# a slow build (ASan) gets more time: every wait and time limit below is multiplied by this
SLOW = float(os.environ.get("BA_TUI_SLOW", "3" if VALGRIND or _sanitized() else "1"))


def tui_path():
    return os.path.join(build_dir(), "tui", "bluearrow-tui")


class Tui:
    def __init__(self, root, config_text, settings="", width=80, height=24, env=None,
                 args=(), start=True):
        self.root = str(root)
        # a private server on a socket inside the test's directory (tmux -S): removed with it
        self.sock = os.path.join(self.root, "tmux.sock")
        self.width, self.height = width, height
        self.home = os.path.join(self.root, "home")
        for d in ("home", "data", "state", "config/bluearrow"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        self.cfg = os.path.join(self.root, "config", "accounts")
        with open(self.cfg, "w") as f:
            f.write(config_text)
        os.chmod(self.cfg, 0o600)
        with open(os.path.join(self.root, "config", "bluearrow", "tui"), "w") as f:
            f.write(settings)
        self.env = {
            "HOME": self.home, "XDG_DATA_HOME": os.path.join(self.root, "data"),
            "XDG_STATE_HOME": os.path.join(self.root, "state"),
            "XDG_CONFIG_HOME": os.path.join(self.root, "config"),
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TERM": "tmux-256color" if os.path.exists("/lib/terminfo/t/tmux-256color") or os.path.exists("/usr/share/terminfo/t/tmux-256color") else "screen",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # an ASan/UBSan build reports into files here; close() fails the test on one
            "ASAN_OPTIONS": "log_path=%s/sanitizer:detect_leaks=1" % self.root,
            "UBSAN_OPTIONS": "log_path=%s/sanitizer:print_stacktrace=1" % self.root,
        }
        self.env.update(env or {})
        self.args = list(args)
        self.pid = None
        if start:
            self.start()

    @property
    def drafts_dir(self):
        return os.path.join(self.root, "data", "bluearrow", "drafts")

    def drafts(self):
        d = self.drafts_dir
        if not os.path.isdir(d):
            return []
        return sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".draft"))

    def tmux(self, *args, check=True):
        return subprocess.run(["tmux", "-S", self.sock, "-f", "/dev/null"] + list(args),
                              capture_output=True, text=True, check=check, timeout=10)

    def start(self, env=None):
        e = dict(self.env)
        e.update(env or {})
        envargs = ["%s=%s" % kv for kv in e.items()]
        # standard error goes to a file (BUG lines, sanitizer output, start-up errors)
        self.stderr_path = os.path.join(self.root, "stderr")
        cmd = ["sh", "-c", 'exec "$@" 2>>"$0"', self.stderr_path, "env", "-i"] + envargs + \
            [tui_path(), "-C", self.cfg] + self.args
        # the pane stays after the program exits, so its last screen and exit status can be read
        if self.pid is None and not self._alive_server():
            self.tmux("new-session", "-d", "-x", str(self.width), "-y", str(self.height),
                      "-s", "t", "sh", "-c", "sleep 3600")
            self.tmux("set-option", "-g", "remain-on-exit", "on")
            self.tmux("set-option", "-g", "window-size", "manual")
            self.tmux("set-option", "-g", "status", "off")
        self.tmux("respawn-pane", "-k", "-t", "t", *cmd)
        self.pid = int(self.tmux("display-message", "-p", "-t", "t", "#{pane_pid}").stdout)
        self.wait_for(lambda s: "--" in s or not self.alive(), timeout=5)

    def _alive_server(self):
        return self.tmux("has-session", "-t", "t", check=False).returncode == 0

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, text):
        self.tmux("send-keys", "-t", "t", "-l", "--", text)

    def screen(self, escapes=False):
        args = ["capture-pane", "-p", "-t", "t"] + (["-e"] if escapes else [])
        return self.tmux(*args).stdout

    def rows(self):
        return self.screen().split("\n")

    def wait_for(self, what, timeout=5.0):
        """Waits until what (a string on the screen, or a predicate of the screen) holds."""
        deadline = time.monotonic() + timeout * SLOW
        s = ""
        while time.monotonic() < deadline:
            s = self.screen()
            if (what(s) if callable(what) else what in s):
                return s
            time.sleep(0.03)
        raise AssertionError("timed out waiting for %r; the screen:\n%s" % (what, s))

    def resize(self, w, h):
        self.tmux("resize-window", "-t", "t", "-x", str(w), "-y", str(h))
        self.width, self.height = w, h

    def alive(self):
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        out = self.tmux("list-panes", "-t", "t", "-F", "#{pane_dead}", check=False)
        return out.returncode != 0 or out.stdout.strip() != "1"

    def kill(self, sig=signal.SIGKILL):
        os.kill(self.pid, sig)
        deadline = time.monotonic() + 5 * SLOW
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.pid = None

    def exit_status(self):
        """The exit status, or "signal N" for a program killed by a signal."""
        deadline = time.monotonic() + 3 * SLOW
        while True:   # tmux sees the terminal close, then reaps the process a moment later
            out = self.tmux("list-panes", "-t", "t", "-F",
                            "#{pane_dead}/#{pane_dead_status}/#{pane_dead_signal}").stdout.strip()
            if (out.startswith("1/") and out != "1//") or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        out = out.partition("/")[2]
        status, _, sig = out.partition("/")
        return status if status else "signal %s" % sig

    def stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except (OSError, AttributeError):
            return ""

    def sanitizer_reports(self):
        text = self.stderr()
        for n in sorted(os.listdir(self.root)):
            if n.startswith("sanitizer"):
                with open(os.path.join(self.root, n)) as f:
                    text += f.read()
        return text

    def close(self):
        if self.pid is not None and self.alive():
            # SIGTERM: the program saves and returns from main, so a sanitizer build
            # checks for leaks at exit
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 3 * SLOW
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
        self.tmux("kill-server", check=False)
        self.pid = None
        reports = [n for n in os.listdir(self.root) if n.startswith("sanitizer")]
        for n in reports:
            with open(os.path.join(self.root, n)) as f:
                text = f.read()
            raise AssertionError("sanitizer report %s:\n%s" % (n, text[:4000]))

    # ---- composing ------------------------------------------------------------
    def field(self, key, text, clear=True):
        """Opens the prompt of key (t, c, b, s, f), replaces its text, accepts it."""
        self.keys(key)
        if clear:
            self.keys("C-u")
        self.type(text)
        self.keys("Enter")

    def builtin_body(self, text):
        self.keys("e")
        self.wait_for("^X:Done")
        for i, line in enumerate(text.split("\n")):
            if i:
                self.keys("Enter")
            if line:
                self.type(line)
        self.keys("C-x")
        self.wait_for("Send")


def cells(s):
    """Terminal cells of s: East Asian wide and fullwidth characters take two."""
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def fit(s, width):
    """The longest prefix of s that fits in width cells."""
    out = ""
    for c in s:
        if cells(out + c) > width:
            break
        out += c
    return out


def has_tmux():
    return shutil.which("tmux") is not None
