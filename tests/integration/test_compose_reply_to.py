"""compose --reply-to: an address field built through the draft (bluearrow/draft.h), written
after Cc, never a recipient, and refused together with a --header Reply-To."""
import email
import email.policy
import os
import subprocess

BUILD = os.environ.get("BA_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
BA = os.path.join(BUILD, "bluearrow")


def compose(*args):
    return subprocess.run([BA, "compose", *args], capture_output=True)


def test_reply_to_field():
    p = compose("--from", "me@example.org", "--to", "you@example.net", "--cc", "c@example.net",
                "--reply-to", "Grüße Liste <list@example.org>", "--reply-to", "b@bücher.example",
                "--subject", "s")
    assert p.returncode == 0, p.stderr
    head = p.stdout.split(b"\n\n")[0].decode()
    assert "Cc: c@example.net\nReply-To: " in head and head.index("Reply-To") < head.index("Subject")
    msg = email.message_from_bytes(p.stdout, policy=email.policy.default)
    assert not msg.defects
    addrs = msg["Reply-To"].addresses
    assert [(a.display_name, a.addr_spec) for a in addrs] == [
        ("Grüße Liste", "list@example.org"), ("", "b@xn--bcher-kva.example")]


def test_reply_to_errors():
    p = compose("--from", "me@example.org", "--to", "you@example.net", "--reply-to", "bad@")
    assert p.returncode == 65 and p.stdout == b"" and b"reply-to" in p.stderr
    p = compose("--from", "me@example.org", "--to", "you@example.net", "--reply-to",
                "a@example.org", "--header", "Reply-To: b@example.org")
    assert p.returncode == 64 and p.stdout == b"" and b"reply-to given both" in p.stderr
