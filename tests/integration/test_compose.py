"""bluearrow compose end to end: every message parses with Python's email package without defects,
text decodes back exactly, attachments byte-identical, lines within limits, 7-bit clean, bad input
rejected with nothing on stdout."""
import email
import email.policy
import os
import random
import re
import subprocess

import pytest

BUILD = os.environ.get("BA_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
BA = os.path.join(BUILD, "bluearrow")
FROM = "Sender <sender@example.org>"


def sanitized():
    if os.environ.get("BA_VALGRIND") == "1":  # memcheck's own memory counts in the RSS too
        return True
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            return "BA_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


def compose(*args, stdin=None, check=True):
    p = subprocess.run([BA, "compose", *args], input=stdin, capture_output=True)
    if check:
        assert p.returncode == 0, p.stderr.decode()
    return p


def parse(data):
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert not msg.defects, msg.defects
    for part in msg.walk():
        assert not part.defects, (part.get_content_type(), part.defects)
    return msg


def check_lines(data, crlf=False):
    """7-bit clean, lines <= 998 octets, header lines <= 78, consistent line endings."""
    assert all(b < 128 for b in data), "output is not 7-bit clean"
    if crlf:
        assert b"\n" not in data.replace(b"\r\n", b""), "bare LF in CRLF output"
        lines = data.split(b"\r\n")
    else:
        assert b"\r" not in data, "CR in LF output"
        lines = data.split(b"\n")
    assert data.endswith(b"\r\n" if crlf else b"\n")
    for line in lines:
        assert len(line) <= 998
    header = lines[: lines.index(b"")]
    for line in header:
        assert len(line) <= 78, line


def attachments(msg):
    return [p for p in msg.walk() if p.get_content_disposition() == "attachment"]


def test_simple_text_message(tmp_path):
    body = tmp_path / "body.txt"
    body.write_text("Hello,\n\nthis is the body.\n")
    data = compose("--from", FROM, "--to", "rcpt@example.net", "--subject", "Hi", "--body",
                   str(body)).stdout
    check_lines(data)
    msg = parse(data)
    assert msg["Subject"] == "Hi"
    assert msg["From"].addresses[0].addr_spec == "sender@example.org"
    assert msg["To"].addresses[0].addr_spec == "rcpt@example.net"
    assert msg["MIME-Version"] == "1.0"
    assert re.fullmatch(r"<[^<>@\s]+@example\.org>", msg["Message-ID"])
    assert msg["Date"].datetime is not None
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert msg["Content-Transfer-Encoding"] == "7bit"
    assert msg.get_content() == "Hello,\n\nthis is the body.\n"


LONG_SUBJECT = ("Ein sehr langer Betreff über Grüße und Übermut, " * 5 + "한국어 日本語 🎉") * 2


@pytest.mark.parametrize("subject", [
    "안녕하세요, 세계! 메일 테스트입니다",
    "日本語の件名：テストメール、よろしくお願いします",
    "Emoji 🎉🚀✉️ party 👩‍👩‍👧",
    LONG_SUBJECT,
    "plain ASCII with =?utf-8?q?lookalike?= and (parens) \"quotes\"",
    "a" * 300,
    "tab\tinside",
])
def test_subject_round_trip(subject):
    assert len(LONG_SUBJECT) > 200
    data = compose("--from", FROM, "--to", "r@example.net", "--subject", subject).stdout
    check_lines(data)
    assert parse(data)["Subject"] == subject


@pytest.mark.parametrize("name", [
    "Doe, Jane", "Jane \"JD\" Doe", "Jane (work) Doe", "김철수", "山田 太郎", "Zoë 🎉 O'Brien",
    ("Very Long Display Name " * 6).strip(), "  spaced  out ",
])
def test_display_names_round_trip(name):
    q = name.replace("\\", "\\\\").replace('"', '\\"')
    data = compose("--from", f'"{q}" <me@example.org>', "--to", f'"{q}" <you@example.net>',
                   "--cc", f'"{q}" <c1@example.net>, plain@example.net').stdout
    check_lines(data)
    msg = parse(data)
    assert msg["From"].addresses[0].display_name == name
    assert msg["To"].addresses[0].display_name == name
    cc = msg["Cc"].addresses
    assert [a.addr_spec for a in cc] == ["c1@example.net", "plain@example.net"]
    assert cc[0].display_name == name


def test_many_recipients_fold(tmp_path):
    to = ", ".join(f"Person {i} <p{i}@example.net>" for i in range(40))
    data = compose("--from", FROM, "--to", to).stdout
    check_lines(data)
    msg = parse(data)
    assert [a.addr_spec for a in msg["To"].addresses] == [f"p{i}@example.net" for i in range(40)]


def test_bcc_never_written():
    p = compose("--from", FROM, "--to", "a@example.net", "--bcc", "Secret <hidden@example.net>",
                "--bcc", "other@example.net")
    data = p.stdout
    assert b"hidden" not in data and b"other@" not in data
    assert parse(data)["Bcc"] is None
    # a pipe into `sendmail -t` would lose them: compose says so on stderr
    assert b"Bcc recipients are not written" in p.stderr
    assert compose("--from", FROM, "--to", "a@example.net").stderr == b""
    data = compose("--from", FROM, "--bcc", "hidden@example.net").stdout
    assert b"hidden" not in data
    parse(data)


@pytest.mark.parametrize("fname", [
    "report.pdf", "Übersicht 2024.xlsx", "보고서.txt", "議事録（最終版）.txt", "a,b;c \"q\" (p).bin",
    "🎉party.png", "x" * 150 + ".dat",
])
def test_filename_round_trip(tmp_path, fname):
    f = tmp_path / "payload"
    f.write_bytes(b"some content\n")
    data = compose("--from", FROM, "--to", "r@example.net", "--attach", str(f),
                   "--attach-name", fname).stdout
    check_lines(data)
    msg = parse(data)
    (att,) = attachments(msg)
    assert att.get_filename() == fname
    assert att.get_payload(decode=True) == b"some content\n"


def test_default_filename_is_basename(tmp_path):
    f = tmp_path / "Straße.txt"
    f.write_text("x\n")
    msg = parse(compose("--from", FROM, "--to", "r@example.net", "--attach", str(f)).stdout)
    assert attachments(msg)[0].get_filename() == "Straße.txt"


@pytest.mark.parametrize("crlf", [False, True])
def test_attachments_byte_identical(tmp_path, crlf):
    files = {
        "empty.bin": b"",
        "random.bin": os.urandom(1 << 20),
        "crlf.txt": b"line one\r\nline two\r\n" * 100,
        "lf.txt": b"line one\nline two\n" * 100,
        "noeol.txt": b"no final newline",
        "latin.txt": "Grüße aus Köln\n".encode() * 50,
        "cr.txt": b"old mac\rline\r",
        "boundary.txt": b"--=_looks like a boundary\n--=_\n",
        "long.txt": b"y" * 5000 + b"\n",
        "nul.txt": b"a\0b\n",
        "from.txt": b"From here\n.\n. dot\n",
        "trailing.txt": b"space at end   \ntab\t\n",
    }
    args = ["--from", FROM, "--to", "r@example.net", "--subject", "files", "--body", "-"]
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        args += ["--attach", str(tmp_path / name)]
    if crlf:
        args.append("--crlf")
    data = compose(*args, stdin="Körper\n".encode()).stdout
    check_lines(data, crlf=crlf)
    msg = parse(data)
    assert msg.get_content_type() == "multipart/mixed"
    atts = attachments(msg)
    assert [a.get_filename() for a in atts] == list(files)
    for a in atts:
        assert a.get_payload(decode=True) == files[a.get_filename()], a.get_filename()
    body = next(p for p in msg.walk()
                if p.get_content_type() == "text/plain" and p.get_content_disposition() is None)
    assert body.get_content().replace("\r\n", "\n") == "Körper\n"


def test_content_types(tmp_path):
    (tmp_path / "pic").write_bytes(b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\0" * 30)
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    (tmp_path / "data.csv").write_bytes(b"a,b\n1,2\n")
    # fixed noise: os.urandom() now and then starts with a magic number ("MZ": a DOS executable)
    (tmp_path / "x.unknownext").write_bytes(b"\xff\x00" + random.Random(1000).randbytes(998))
    (tmp_path / "t.txt").write_bytes("ünïcode\n".encode())
    args = ["--from", FROM, "--to", "r@example.net"]
    for n in ["pic", "doc.pdf", "data.csv", "x.unknownext", "t.txt"]:
        args += ["--attach", str(tmp_path / n)]
    args += ["--attach", str(tmp_path / "t.txt"), "--attach-type", "application/x-custom"]
    msg = parse(compose(*args).stdout)
    types = [a.get_content_type() for a in attachments(msg)]
    assert types == ["image/gif", "application/pdf", "text/csv", "application/octet-stream",
                     "text/plain", "application/x-custom"]
    assert attachments(msg)[4].get_content_charset() == "utf-8"


def test_alternative_and_html(tmp_path):
    (tmp_path / "b.txt").write_text("plain text\n")
    (tmp_path / "b.html").write_text("<html><body><p>Grüße</p></body></html>\n")
    (tmp_path / "a.bin").write_bytes(b"\1\2\3")
    data = compose("--from", FROM, "--to", "r@example.net", "--body", str(tmp_path / "b.txt"),
                   "--html", str(tmp_path / "b.html"), "--attach", str(tmp_path / "a.bin")).stdout
    check_lines(data)
    msg = parse(data)
    assert msg.get_content_type() == "multipart/mixed"
    alt = msg.get_payload()[0]
    assert alt.get_content_type() == "multipart/alternative"
    text, html = alt.get_payload()
    assert text.get_content() == "plain text\n"
    assert html.get_content_type() == "text/html"
    assert html.get_content() == "<html><body><p>Grüße</p></body></html>\n"
    assert msg.get_body(preferencelist=("html",)) is not None
    # text+html alone: the alternative is the root
    msg = parse(compose("--from", FROM, "--to", "r@example.net", "--body", str(tmp_path / "b.txt"),
                        "--html", str(tmp_path / "b.html")).stdout)
    assert msg.get_content_type() == "multipart/alternative"


@pytest.mark.parametrize("text,cte", [
    ("just ascii\n", "7bit"),
    ("mostly ascii with one ü\n" * 20, "quoted-printable"),
    ("한국어 본문입니다\n" * 20, "base64"),
    ("x" * 2000 + "\n", "quoted-printable"),
    ("--=_ a line like a boundary\n", "quoted-printable"),
])
def test_body_transfer_encoding(text, cte):
    data = compose("--from", FROM, "--to", "r@example.net", "--body", "-",
                   stdin=text.encode()).stdout
    check_lines(data)
    msg = parse(data)
    assert msg["Content-Transfer-Encoding"] == cte
    assert msg.get_content() == text


def test_8bit_option():
    text = "한국어 본문입니다\n"
    data = compose("--from", FROM, "--to", "r@example.net", "--body", "-", "--8bit",
                   stdin=text.encode()).stdout
    msg = parse(data)
    assert msg["Content-Transfer-Encoding"] == "8bit"
    assert msg.get_content() == text


def test_threading_and_extra_headers():
    refs = " ".join(f"<ref{i}.abcdefghij@example.org>" for i in range(10))
    data = compose("--from", FROM, "--to", "r@example.net", "--in-reply-to", "<parent@example.org>",
                   "--references", refs, "--references", "<last@example.org>",
                   "--header", "X-Mailer-Test: 1", "--header", "Reply-To: Grüß <r@example.org>",
                   "--header", "X-Long: " + "word " * 60).stdout
    check_lines(data)
    msg = parse(data)
    assert msg["In-Reply-To"] == "<parent@example.org>"
    assert msg["References"].split() == refs.split() + ["<last@example.org>"]
    assert msg["X-Mailer-Test"] == "1"
    assert msg["X-Long"] == ("word " * 60).strip()


def test_crlf_output(tmp_path):
    (tmp_path / "b.txt").write_bytes(b"one\ntwo\r\nthree\n")
    data = compose("--from", FROM, "--to", "r@example.net", "--body", str(tmp_path / "b.txt"),
                   "--crlf", "--subject", "Grüße " * 20).stdout
    check_lines(data, crlf=True)
    msg = parse(data)
    assert msg.get_content().replace("\r\n", "\n") == "one\ntwo\nthree\n"


def test_idn_domain():
    data = compose("--from", "me@bücher.example", "--to", "r@日本.example").stdout
    check_lines(data)
    msg = parse(data)
    assert msg["From"].addresses[0].domain == "xn--bcher-kva.example"
    assert msg["Message-ID"].endswith("@xn--bcher-kva.example>")


def test_message_ids_unique():
    ids = {parse(compose("--from", FROM, "--to", "r@example.net").stdout)["Message-ID"]
           for _ in range(20)}
    assert len(ids) == 20


# ---- bad input ---------------------------------------------------------------

@pytest.mark.parametrize("args,code,needle", [
    (["--to", "r@example.net"], 64, "--from"),
    (["--from", FROM], 64, "--to"),
    (["--from", FROM, "--to", "r@example.net", "--bogus"], 64, "--bogus"),
    (["--from", FROM, "--to", "r@example.net", "--attach-type", "text/plain"], 64, "--attach"),
    (["--from", FROM, "--to", "not an address"], 65, "not an address"),
    (["--from", FROM, "--to", "r@"], 65, "r@"),
    (["--from", FROM, "--to", "jürgen@example.net"], 65, "jürgen@example.net"),
    (["--from", "a@example.org, b@example.org", "--to", "r@example.net"], 65, "from"),
    (["--from", FROM, "--to", "r@example.net", "--subject", "evil\r\nBcc: x@example.net"], 65,
     "subject"),
    (["--from", FROM, "--to", "r@example.net", "--subject", "evil\nX: y"], 65, "subject"),
    (["--from", FROM, "--to", "r@example.net", "--header", "X-A: b\r\nBcc: x@example.net"], 65,
     "X-A"),
    (["--from", FROM, "--to", "r@example.net", "--header", "Bad Name: v"], 65, "Bad Name"),
    (["--from", FROM, "--to", "r@example.net", "--header", "NoColon"], 65, "NoColon"),
    (["--from", FROM, "--to", "r@example.net", "--header", "Content-Type: text/html"], 65,
     "Content-Type"),
    (["--from", FROM, "--to", "r@example.net", "--in-reply-to", "no-brackets"], 65, "no-brackets"),
    (["--from", FROM, "--to", "r@example.net", "--attach", "/nonexistent/file.pdf"], 66,
     "/nonexistent/file.pdf"),
    (["--from", FROM, "--to", "r@example.net", "--body", "/nonexistent/body.txt"], 66,
     "/nonexistent/body.txt"),
    (["--from", FROM, "--to", "r@example.net", "--attach", "/"], 66, "'/'"),
])
def test_bad_input(args, code, needle):
    p = compose(*args, check=False)
    assert p.returncode == code, p.stderr
    assert p.stdout == b""
    assert needle in p.stderr.decode(errors="replace")


def test_bad_utf8(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Grüße\n".encode("latin-1"))
    p = compose("--from", FROM, "--to", "r@example.net", "--body", str(bad), check=False)
    assert p.returncode == 65 and p.stdout == b""
    assert "latin1.txt" in p.stderr.decode() and "utf-8" in p.stderr.decode()
    p = subprocess.run([BA, "compose", "--from", FROM, "--to", "r@example.net", "--subject",
                        b"caf\xe9"], capture_output=True)
    assert p.returncode == 65 and p.stdout == b""


def test_unreadable_attachment_after_good_ones(tmp_path):
    good = tmp_path / "good.bin"
    good.write_bytes(os.urandom(100000))
    locked = tmp_path / "locked.bin"
    locked.write_bytes(b"secret")
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads everything: use a missing file instead
        locked = tmp_path / "missing.bin"
    p = compose("--from", FROM, "--to", "r@example.net", "--attach", str(good), "--attach",
                str(locked), check=False)
    assert p.returncode == 66 and p.stdout == b""
    assert locked.name in p.stderr.decode()


def test_help():
    p = subprocess.run([BA, "compose", "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--attach-name" in p.stdout
    p = subprocess.run([BA, "help", "compose"], capture_output=True, text=True)
    assert p.returncode == 0 and "--attach-type" in p.stdout


def test_large_attachment_streams(tmp_path):
    """50 MB attachment: decodes back identical, and peak RSS stays far below its size."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(50):
            f.write(os.urandom(1 << 20))
    out = tmp_path / "out.eml"
    with open(out, "wb") as f:
        p = subprocess.run(["/usr/bin/time", "-f", "%M", BA, "compose", "--from", FROM, "--to",
                            "r@example.net", "--attach", str(big)], stdout=f,
                           stderr=subprocess.PIPE)
    assert p.returncode == 0, p.stderr
    rss_kib = int(p.stderr.decode().strip().splitlines()[-1])
    if not sanitized():  # ASan's shadow memory and quarantine say nothing about ours
        assert rss_kib < 16 * 1024, f"peak RSS {rss_kib} KiB"
    data = out.read_bytes()
    msg = parse(data)
    (att,) = attachments(msg)
    assert att.get_payload(decode=True) == big.read_bytes()
    assert max(len(l) for l in data.split(b"\n")) <= 998


# ---- 8-bit downgrade (ba_mime_downgrade through the test tool) ---------------

TOOL = os.path.join(BUILD, "tests", "ba-test-tool")


def downgrade(data, crlf=False):
    p = subprocess.run([TOOL, "downgrade"] + (["--crlf"] if crlf else []), input=data,
                       capture_output=True)
    return p


def eight_bit_message(nl=b"\n"):
    binary = bytes(range(256)) * 40 + b"\r\nend"
    long_line = ("x" * 1500 + "\n").encode()
    parts = [
        (b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n",
         "Grüße, 안녕하세요\nline two\n".encode()),
        (b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n"
         b"Content-Disposition: attachment; filename=b.bin\n", binary),
        (b"Content-Type: text/plain\n", b"already 7bit\n"),
        (b"Content-Type: text/plain\n", long_line),
    ]
    out = (b"From: a@example.org\nTo: b@example.net\nSubject: " + "Grüße aus Köln".encode() +
           b"\nX-Note: " + "naïve".encode() + b"\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/mixed; boundary=\"B1\"\nContent-Transfer-Encoding: 8bit\n\n"
           b"preamble\n")
    for head, body in parts:
        out += b"--B1\n" + head + b"\n" + body + b"\n"
    out += b"--B1--\n"
    if nl != b"\n":
        out = out.replace(b"\n", nl)
    return out, [p[1] for p in parts]


@pytest.mark.parametrize("crlf", [False, True])
def test_downgrade_multipart(crlf):
    src, bodies = eight_bit_message()
    p = downgrade(src, crlf)
    assert p.returncode == 0, p.stderr
    check_lines(p.stdout, crlf=crlf)
    msg = parse(p.stdout)
    assert msg["Subject"] == "Grüße aus Köln"
    assert msg["X-Note"] == "naïve"
    leaves = [q for q in msg.walk() if not q.is_multipart()]
    assert len(leaves) == len(bodies)
    got = [q.get_payload(decode=True) for q in leaves]
    norm = (lambda b: b.replace(b"\r\n", b"\n"))
    assert norm(got[0]) == norm(bodies[0])
    assert got[1] == bodies[1]          # binary: byte-identical
    assert norm(got[2]) == bodies[2]
    assert norm(got[3]) == bodies[3]    # the long line survives, QP-encoded
    assert leaves[0]["Content-Transfer-Encoding"] == "quoted-printable"
    assert leaves[1]["Content-Transfer-Encoding"] == "base64"
    assert leaves[2]["Content-Transfer-Encoding"] is None


def test_downgrade_keeps_clean_messages():
    data = compose("--from", FROM, "--to", "r@example.net", "--subject", "Grüße",
                   "--body", "-", stdin="Grüße\n".encode()).stdout
    p = downgrade(data)
    assert p.returncode == 0 and p.stdout == data


def test_downgrade_large_part_streams(tmp_path):
    body = os.urandom(3 << 20)
    src = (b"From: a@example.org\nTo: b@example.net\nMIME-Version: 1.0\n"
           b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n" + body)
    p = downgrade(src)
    assert p.returncode == 0, p.stderr
    msg = parse(p.stdout)
    assert msg.get_payload(decode=True) == body


def test_downgrade_refuses_8bit_address_header():
    p = downgrade("From: Jürgen <j@example.org>\nTo: b@example.net\n\nhi\n".encode())
    assert p.returncode == 65 and "From" in p.stderr.decode()


def test_stdin_from_file_and_pipe(tmp_path):
    """--body - and --attach - read standard input, seekable (a file) or not (a pipe)."""
    f = tmp_path / "in.bin"
    content = os.urandom(200000)
    f.write_bytes(content)
    with open(f, "rb") as stdin:
        p = subprocess.run([BA, "compose", "--from", FROM, "--to", "r@example.net", "--attach",
                            "-", "--attach-name", "in.bin"], stdin=stdin, capture_output=True)
    assert p.returncode == 0, p.stderr
    assert attachments(parse(p.stdout))[0].get_payload(decode=True) == content
    p = compose("--from", FROM, "--to", "r@example.net", "--attach", "-", stdin=content)
    (att,) = attachments(parse(p.stdout))
    assert att.get_payload(decode=True) == content and att.get_filename() is None


def test_groups_and_comments():
    data = compose("--from", "Jürgen (work) <j@münchen.example>", "--to",
                   "undisclosed-recipients:;", "--cc",
                   'Team: a@example.net, "Doe, J" <b@example.net>;', "--bcc",
                   "x@example.net").stdout
    check_lines(data)
    msg = parse(data)
    assert msg["To"].groups[0].display_name == "undisclosed-recipients"
    assert msg["To"].addresses == ()
    team = msg["Cc"].groups[0]
    assert team.display_name == "Team"
    assert [a.addr_spec for a in team.addresses] == ["a@example.net", "b@example.net"]
    assert msg["From"].addresses[0].display_name == "Jürgen"
    assert b"x@example.net" not in data
    # a group alone is no recipient
    p = compose("--from", FROM, "--to", "undisclosed-recipients:;", check=False)
    assert p.returncode == 64 and p.stdout == b""
