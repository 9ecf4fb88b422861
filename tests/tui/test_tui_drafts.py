"""Nothing lost: the composition is on disk within a second of every key, survives SIGKILL
and SIGHUP, a recalled draft is never deleted before its replacement is written, and leaving
with unsent changes asks to postpone.

BA_TUI_TRIALS (default 20; ctest sets 5) is the number of SIGKILL-while-composing trials."""
import os
import random
import signal
import time

TRIALS = int(os.environ.get("BA_TUI_TRIALS", "20"))

# the port of a server that is never started: nothing here sends
NO_SERVER = 9


def unescape(v):
    """A value of the draft format (bluearrow/draft.h): \\\\ \\n \\r \\t \\xHH."""
    out, i = bytearray(), 0
    b = v.encode()
    while i < len(b):
        if b[i:i + 1] == b"\\" and i + 1 < len(b):
            c = b[i + 1:i + 2]
            if c == b"x":
                out.append(int(b[i + 2:i + 4], 16))
                i += 4
                continue
            out += {b"n": b"\n", b"r": b"\r", b"t": b"\t"}.get(c, c)
            i += 2
            continue
        out.append(b[i])
        i += 1
    return out.decode()


def draft_fields(path):
    """The header lines of a draft file as a dict, and its in-memory body."""
    with open(path, "rb") as f:
        data = f.read()
    head, _, body = data.partition(b"\n\n")
    fields = {}
    for line in head.decode().split("\n")[1:]:
        k, _, v = line.partition(": ")
        fields.setdefault(k, unescape(v))
    return fields, body.decode()


def test_sigkill_while_composing_draft_restored(tui):
    rnd = random.Random(1313)
    for trial in range(TRIALS):
        t = tui(NO_SERVER, name="k%d" % trial)
        to = "user%d@example.test" % rnd.randrange(1000)
        subject = "시험 %d %s" % (trial, "x" * rnd.randrange(30))
        body = "line %d\n한국어 줄" % trial
        t.field("t", to)
        t.field("s", subject)
        if trial % 2:
            # half of the trials die with a field still open (typed, never accepted)
            t.builtin_body(body)
            t.keys("c")
            t.type("cc@example.test")
            expect_cc = "cc@example.test"
        else:
            t.builtin_body(body)
            expect_cc = None
        time.sleep(1.0 + rnd.random() * 0.2)
        t.kill(signal.SIGKILL)
        drafts = t.drafts()
        assert len(drafts) == 1, drafts
        fields, got_body = draft_fields(drafts[0])
        assert fields["To"] == to and fields["Subject"] == subject
        assert got_body == body
        if expect_cc:
            assert fields["Cc"] == expect_cc
        # the next start offers it; Enter recalls it as it was
        t.start()
        s = t.wait_for("1 draft saved before")
        assert subject in s
        t.keys("Enter")
        s = t.wait_for("-- Compose")
        # (the screen has no trailing blanks)
        assert "Subject: " + subject.rstrip() in s and "To: " + to in s and "line %d" % trial in s
        t.close()


def test_sighup_saves_and_next_start_offers_it(tui):
    t = tui(NO_SERVER)
    t.field("t", "hup@example.test")
    t.keys("s")
    t.type("typed just before the hangup")
    # no pause: SIGHUP saves what is there now, not what was there a quarter second ago
    t.kill(signal.SIGHUP)
    (path,) = t.drafts()
    fields, _ = draft_fields(path)
    assert fields["Subject"] == "typed just before the hangup"
    t.start()
    t.wait_for("typed just before the hangup")


def test_sigkill_after_a_recall_keeps_the_draft(tui):
    t = tui(NO_SERVER)
    t.field("t", "recall@example.test")
    t.field("s", "version one")
    time.sleep(0.6)
    t.kill()
    (first,) = t.drafts()
    t.start()
    t.wait_for("version one")
    t.keys("Enter")
    t.wait_for("-- Compose")
    # recalled: the file is still there, unchanged, until a change replaces it
    assert t.drafts() == [first]
    assert draft_fields(first)[0]["Subject"] == "version one"
    t.field("s", "version two")
    time.sleep(1.0)
    t.kill()
    assert t.drafts() == [first]
    assert draft_fields(first)[0]["Subject"] == "version two"
    t.start()
    t.wait_for("version two")
    t.keys("Enter")
    t.wait_for("Subject: version two")


def test_quit_asks_to_postpone(tui):
    t = tui(NO_SERVER)
    t.field("t", "later@example.test")
    t.field("s", "keep me")
    t.keys("q")
    t.wait_for("Postpone this message?")
    t.keys("c")
    t.wait_for(lambda s: "Postpone" not in s)
    assert t.alive()
    t.keys("q")
    t.wait_for("Postpone this message?")
    t.keys("y")
    t.wait_for(lambda s: not t.alive())
    (path,) = t.drafts()
    assert draft_fields(path)[0]["Subject"] == "keep me"
    # and discarding removes it
    t.start()
    t.keys("Enter")
    t.wait_for("Subject: keep me")
    t.field("s", "changed")
    t.keys("q")
    t.wait_for("Postpone this message?")
    t.keys("n")
    t.wait_for(lambda s: not t.alive())
    assert t.drafts() == []


def test_untouched_composer_quits_without_a_draft(tui):
    t = tui(NO_SERVER)
    t.keys("q")
    t.wait_for(lambda s: not t.alive())
    assert t.drafts() == []
