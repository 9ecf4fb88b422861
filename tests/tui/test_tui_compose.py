"""bluearrow-tui's composer end to end: a Korean subject and two attachments delivered intact,
attachment changes that never touch the files, the undo window, completion from every source,
pre-send checks, and the compose screen's start-up time."""
import email
import email.policy
import glob
import os
import stat
import time

from conftest import account_config  # noqa: F401
import tuilib

SUBJECT = "안녕하세요, 첨부 두 개입니다"


def parse(data):
    return email.message_from_bytes(data, policy=email.policy.default)


def test_korean_subject_two_attachments_delivered_intact(tmp_path, smtp_server, tui):
    srv = smtp_server()
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 40)
    txt = tmp_path / "notes.txt"
    txt.write_text("첫 줄\nsecond line\n", encoding="utf-8")
    t = tui(srv)
    t.field("t", "bob@example.test")
    t.field("s", SUBJECT)
    t.builtin_body("안녕하세요\nthe body")
    t.keys("a")
    t.type(str(pdf))
    t.keys("Enter")
    t.keys("a")
    t.type(str(txt))
    t.keys("Enter")
    t.wait_for("[2] notes.txt")
    # the preview is the message as it will be built
    t.keys("p")
    s = t.wait_for("-- Preview")
    assert "To: bob@example.test" in s and "Subject: =?utf-8?" in s
    t.keys("End")
    s = t.wait_for("filename=notes.txt")
    t.keys("q")
    t.wait_for("-- Compose")
    t.keys("y")
    txn = srv.wait_txn(timeout=10 * tuilib.SLOW)
    assert txn.accepted_rcpts == ["bob@example.test"]
    m = parse(txn.data)
    assert m["subject"] == SUBJECT
    parts = list(m.iter_attachments())
    assert [p.get_filename() for p in parts] == ["report.pdf", "notes.txt"]
    assert parts[0].get_content() == pdf.read_bytes()
    assert parts[1].get_content() == "첫 줄\nsecond line\n"
    body = m.get_body(("plain",)).get_content()
    assert body.startswith("안녕하세요\nthe body")
    # the outbox says so, in a word, with the server's reply
    s = t.wait_for("sent")
    assert "250" in s
    # the sent composition is no draft any more
    assert t.drafts() == []


def test_attachment_add_remove_undo_rename_type_file_unchanged(tmp_path, smtp_server, tui):
    srv = smtp_server()
    d = tmp_path / "files"
    d.mkdir()
    a = d / "alpha.dat"
    b = d / "beta.dat"
    a.write_bytes(b"A" * 5000)
    b.write_bytes(b"B" * 123)
    os.chmod(a, 0o640)
    os.chmod(b, 0o604)
    before = {p: (os.stat(p).st_mode, os.stat(p).st_mtime_ns, p.read_bytes()) for p in (a, b)}
    t = tui(srv)
    t.field("t", "bob@example.test")
    t.field("s", "files")
    # a glob adds both; sizes are shown
    t.keys("a")
    t.type(str(d / "*.dat"))
    t.keys("Enter")
    s = t.wait_for("[2] beta.dat")
    assert "4.9 KiB" in s and "123 B" in s
    assert "Attachments: 2" in s
    # remove the focused one (beta), undo brings it back
    t.keys("D")
    t.wait_for(lambda s: "beta.dat" not in s)
    t.keys("u")
    t.wait_for("[2] beta.dat")
    # rename what is sent, set a type
    t.keys("R", "C-u")
    t.type("보고서.bin")
    t.keys("Enter")
    t.keys("C-t", "C-u")
    t.type("application/x-beta")
    t.keys("Enter")
    s = t.wait_for("application/x-beta")
    assert "보고서.bin" in s and "(file beta.dat)" in s
    # tab completion of a path
    t.keys("a")
    t.type(str(d / "al"))
    t.keys("Tab")
    t.wait_for("alpha.dat")
    t.keys("Escape")
    t.keys("y")
    txn = srv.wait_txn(timeout=10 * tuilib.SLOW)
    parts = list(parse(txn.data).iter_attachments())
    assert [p.get_filename() for p in parts] == ["alpha.dat", "보고서.bin"]
    assert parts[1].get_content_type() == "application/x-beta"
    assert parts[1].get_content() == b"B" * 123
    # the files on disk: same names, modes, times and bytes
    assert sorted(os.listdir(d)) == ["alpha.dat", "beta.dat"]
    for p, (mode, mtime, data) in before.items():
        st = os.stat(p)
        assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns, p.read_bytes()) == \
            (stat.S_IMODE(mode), mtime, data)


def test_undo_within_the_window_never_contacts_the_server(smtp_server, tui):
    srv = smtp_server()
    t = tui(srv, settings="set undo_seconds 3\n")
    t.field("t", "bob@example.test")
    t.field("s", "take me back")
    t.builtin_body("second thoughts")
    t.keys("y")
    t.wait_for("held")
    t.keys("u")
    s = t.wait_for("taken back")
    # the composer has it again, intact
    assert "bob@example.test" in s and "take me back" in s and "second thoughts" in s
    time.sleep(4)
    assert srv.conns == []
    t.keys("o")
    s = t.wait_for("-- Outbox")  # the status line: "Outbox" is on the composer's key line too
    assert "held" not in s and "take me back" not in s
    # from the composer too: u after sending takes it back
    t.keys("m")
    t.keys("y")
    t.wait_for("held")
    t.keys("m")
    t.wait_for("-- Compose")
    t.keys("u")
    s = t.wait_for("taken back")
    assert "take me back" in s
    time.sleep(3.5)
    assert srv.conns == []


def test_undo_window_passes_then_sent(smtp_server, tui):
    srv = smtp_server()
    t = tui(srv, settings="set undo_seconds 1\n")
    t.field("t", "bob@example.test")
    t.field("s", "after the window")
    t.keys("y")
    t.wait_for("held")
    assert srv.conns == []
    srv.wait_txn(timeout=10 * tuilib.SLOW)
    t.wait_for("sent ")


def test_pre_send_checks(smtp_server, tui):
    srv = smtp_server()
    t = tui(srv)
    t.keys("y")
    t.wait_for("no recipients")
    t.field("t", "bob@example.test")
    t.builtin_body("see the attached file")
    t.keys("y")
    t.wait_for("No subject. Send anyway?")
    t.keys("y")
    t.wait_for("mentions an attachment")
    t.keys("n")
    time.sleep(0.3)
    assert srv.conns == []
    t.field("s", "ok")
    t.keys("y")
    t.wait_for("mentions an attachment")
    t.keys("y")
    srv.wait_txn(timeout=10 * tuilib.SLOW)


def test_completion_from_each_source(tmp_path, smtp_server, tui):
    srv = smtp_server()
    aliases = tmp_path / "msmtp-aliases"
    aliases.write_text("team: alice@example.test, carol@example.test\n")
    mutt = tmp_path / "mutt-aliases"
    mutt.write_text("alias dave Dave Doe <dave@example.test>\n")
    query = tmp_path / "query"
    query.write_text("#!/bin/sh\necho 'Searching...'\n"
                     "case \"$1\" in er*) printf 'erin@example.test\\tErin Query\\tx\\n';; esac\n")
    query.chmod(0o755)
    settings = ("set undo_seconds 0\nset alias_file %s\nset query_command \"%s '%%s'\"\n"
                % (mutt, query))
    t = tui(srv, settings=settings, config_keys={"aliases": str(aliases)})
    # addresses already sent to: send one first
    t.field("t", 'frank@example.test, "Doe, Jane" <jane@example.test>')
    t.field("s", "first")
    t.keys("y")
    srv.wait_txn(timeout=10 * tuilib.SLOW)
    t.keys("m")
    t.wait_for("Compose")
    for typed, want in (("tea", "alice@example.test, carol@example.test"),
                        ("dav", "Dave Doe <dave@example.test>"),
                        ("er", "Erin Query <erin@example.test>"),
                        ("fra", "frank@example.test"),
                        ("jan", '"Doe, Jane" <jane@example.test>')):
        t.keys("t", "C-u")
        t.type(typed)
        t.keys("Tab")
        t.wait_for("To: " + want)
        t.keys("Escape")
    # several addresses: the one after the comma is completed, Tab again cycles
    t.keys("t", "C-u")
    t.type("dave@example.test, fr")
    t.keys("Tab")
    t.wait_for("To: dave@example.test, frank@example.test")
    t.keys("Enter")
    # From: the accounts
    t.keys("f", "C-u", "Tab")
    t.wait_for('From (Tab: accounts): "Me Example" <me@example.test>')
    t.keys("Enter")


def test_compose_screen_usable_within_100ms(smtp_server, tui):
    """From exec to the composer on the terminal, measured on a pty of our own (no tmux)."""
    import pty
    import select
    srv = smtp_server()
    t = tui(srv, start=False)
    env = dict(t.env, TERM="xterm")
    best = None
    for _ in range(3):
        t0 = time.monotonic()
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(tuilib.tui_path(), [tuilib.tui_path(), "-C", t.cfg], env)
        out = b""
        while b"Subject:" not in out and time.monotonic() - t0 < 5 * tuilib.SLOW:
            if select.select([fd], [], [], 0.5)[0]:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
        elapsed = time.monotonic() - t0
        os.write(fd, b"q")
        os.waitpid(pid, 0)
        os.close(fd)
        assert b"Subject:" in out, out[-500:]
        best = elapsed if best is None else min(best, elapsed)
    assert best < 0.1 * tuilib.SLOW, best


def test_size_limit_refused_before_any_upload(tmp_path, tui):
    from sinks import Sink
    sink = Sink(size=50000).start()
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(120000))
    try:
        t = tui(sink.port)
        t.field("t", "bob@example.test")
        t.field("s", "too big")
        t.keys("a")
        t.type(str(f))
        t.keys("Enter")
        t.wait_for("big.bin")
        time.sleep(1.0 * tuilib.SLOW)   # the SIZE probe (EHLO only) has its answer
        t.keys("y")
        t.wait_for("over the server's limit")
        time.sleep(0.5)
        assert "MAIL" not in sink.verbs and "DATA" not in sink.verbs
        assert sink.messages == []
    finally:
        sink.stop()


def test_body_in_the_external_editor(tmp_path, smtp_server, tui):
    srv = smtp_server()
    editor = tmp_path / "editor"
    # an editor that shows itself on the terminal, waits a moment, and appends a line
    editor.write_text("#!/bin/sh\nprintf 'EDITOR RUNNING %s\\n' \"$1\"\nsleep 0.5\n"
                      "printf 'written by the editor: 한글\\n' >>\"$1\"\n")
    editor.chmod(0o755)
    t = tui(srv, env={"EDITOR": str(editor)})
    t.field("t", "bob@example.test")
    t.field("s", "edited")
    t.keys("e")
    t.wait_for("EDITOR RUNNING")         # the editor has the terminal (endwin)
    # and the screen comes back with the text read in (tmux shows the saved screen
    # first, before the composer has redrawn it)
    s = t.wait_for(lambda s: "-- Compose" in s and "written by the editor" in s)
    assert "written by the editor: 한글" in s
    t.keys("e")
    t.wait_for("EDITOR RUNNING")
    t.wait_for("(2 lines) written by the editor")
    t.keys("y")
    txn = srv.wait_txn(timeout=10 * tuilib.SLOW)
    body = parse(txn.data).get_body(("plain",)).get_content()
    assert body == "written by the editor: 한글\nwritten by the editor: 한글\n"


def test_large_attachment_is_queued_without_freezing_the_screen(tmp_path, tui):
    """Send with a ~100 MB attachment: the file is read and written into the outbox by the
    worker, so the screen answers keys at once meanwhile; the message goes out intact, once."""
    from sinks import Sink
    size = int(os.environ.get("BA_TUI_ENQUEUE_BYTES", str(100 << 20)))
    big = tmp_path / "huge.bin"
    with open(big, "wb") as f:
        for _ in range(size // (1 << 20)):
            f.write(os.urandom(1 << 20))
    sink = Sink(size=1 << 30).start()
    try:
        t = tui(sink.port)
        box = os.path.join(t.root, "state", "bluearrow", "outbox")
        t.field("t", "bob@example.test")
        t.field("s", "huge")
        t.keys("a")
        t.type(str(big))
        t.keys("Enter")
        t.wait_for("huge.bin")
        t0 = time.monotonic()
        t.keys("y")
        # a new composition answers while the message is still being written
        t.keys("m")
        t.wait_for("-- Compose", timeout=10 * tuilib.SLOW)
        opened = time.monotonic() - t0
        t.keys("s")
        t1 = time.monotonic()
        t.type("x")
        t.wait_for(lambda s: s.rstrip("\n").split("\n")[-1].endswith("x"), timeout=10)
        echo = time.monotonic() - t1
        # ... still being written: the entry is not in the outbox yet
        assert not glob.glob(os.path.join(box, "**", "q", "*.entry"), recursive=True), \
            "queued before the screen answered"
        assert opened < 0.5 * tuilib.SLOW, opened
        assert echo < 0.2 * tuilib.SLOW, echo
        t.keys("Escape")
        deadline = time.monotonic() + 120 * tuilib.SLOW
        while not sink.messages and time.monotonic() < deadline:
            time.sleep(0.2)
        t.keys("o")
        assert sink.messages, "not delivered in time: " + t.screen()
        time.sleep(2)
        assert len(sink.messages) == 1
        m = parse(sink.messages[0])
        parts = list(m.iter_attachments())
        assert [p.get_filename() for p in parts] == ["huge.bin"]
        assert parts[0].get_content() == big.read_bytes()
    finally:
        sink.stop()
