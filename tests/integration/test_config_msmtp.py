"""bluearrow reads msmtp's configuration files exactly as msmtp does.

For every account of a sample msmtprc that uses 20+ keys, defaults sections,
multiple inheritance and the `account default : NAME` alias, the settings
`msmtp -C FILE -a ACCOUNT --pretend` prints must equal those of
`bluearrow config show -C FILE -a ACCOUNT`.  Error cases must be errors
(exit 78) for both.
"""
import os
import shutil
import subprocess

import pytest

BUILD = os.environ.get("BA_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
BLUEARROW = os.path.join(BUILD, "bluearrow")
MSMTP = shutil.which("msmtp")

SAMPLE = r"""
# A realistic msmtprc: defaults, three accounts, inheritance, alias
defaults
port 587
tls on
tls_starttls on
tls_trust_file /etc/ssl/certs/ca-certificates.crt
timeout 45
logfile ~/.msmtp.log
logfile_time_format "%Y-%m-%d %H:%M:%S"
syslog LOG_MAIL
dsn_notify failure,delay
dsn_return headers
domain client.example.org

account freemail
host smtp.freemail.example
from joe_smith@freemail.example
auth on
user joe.smith
passwordeval "echo evaluated-secret"
tls_crl_file ~/crl.pem
set_from_header on
set_date_header off
remove_bcc_headers on
undisclosed_recipients off
allow_from_override off

account isp : freemail
host mail.isp.example
port 465
tls_starttls off
from "smithjoe@isp.example"
auth scram-sha-256
user 12345
password " sec ret "
source_ip 192.0.2.7
proxy_host 127.0.0.1
proxy_port 9050
tls_priorities NORMAL:-VERS-TLS1.2
tls_host_override mail.isp.example
tls_min_dh_prime_bits 2048
aliases ~/aliases
maildomain isp.example
auto_from off

account pinned
host 2001:db8::25
protocol smtp
tls_trust_file
tls_fingerprint 00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF
tls_certcheck on
tls_key_file ~/client.key
tls_cert_file ~/client.crt
auth external
dsn_notify never
dsn_return full
syslog off
timeout off
set_from_header auto
add_missing_date_header on
undisclosed_recipients on
keepbcc on

account lmtp
socket /run/dovecot/lmtp
protocol lmtp
port 24
tls off
auth off
logfile
dsn_notify off
dsn_return off

account default : isp
"""

# msmtp --pretend label -> our key
LABELS = {"source ip": "source_ip", "proxy host": "proxy_host", "proxy port": "proxy_port"}


def msmtp_settings(path, account, env):
    out = subprocess.run([MSMTP, "-C", path, "-a", account, "--pretend", "--", "x@example.org"],
                         capture_output=True, text=True, env=env, check=True).stdout
    return parse_pretend(out)


def parse_pretend(out):
    got = {}
    for line in out.splitlines():
        if " = " not in line:
            continue
        k, v = line.split(" = ", 1)
        k = LABELS.get(k, k)
        if v == "(not set)":
            continue
        got[k] = v
    return got


def unquote(v):
    return v[1:-1] if len(v) >= 2 and v[0] == '"' and v[-1] == '"' else v


def bluearrow_settings(path, account, env):
    out = subprocess.run([BLUEARROW, "config", "show", "-C", path, "-a", account],
                         capture_output=True, text=True, env=env, check=True).stdout
    return parse_show(out)


def parse_show(out):
    got = {}
    for line in out.splitlines()[1:]:
        k, _, v = line.partition(" ")
        got[k] = unquote(v)
    return got


def normalise_msmtp(m):
    """msmtp --pretend's presentation -> msmtprc values (what we print)."""
    n = dict(m)
    if "auth" in n:
        n["auth"] = {"choose": "on", "none": "off"}.get(n["auth"], n["auth"].lower())
    if "timeout" in n:
        n["timeout"] = n["timeout"].replace(" seconds", "")
    if "dsn_notify" in n:
        n["dsn_notify"] = ",".join(sorted(n["dsn_notify"].lower().split(",")))
    n.setdefault("dsn_notify", "off")
    n["dsn_return"] = {"HDRS": "headers", "FULL": "full"}.get(n.get("dsn_return"), "off")
    n.setdefault("syslog", "off")
    if n.get("password") == "*":
        n["password"] = "<redacted>"
    if "proxy_host" not in n:
        n.pop("proxy_port", None)
    # msmtp 1.8.23 leaves the port of an lmtp socket account at 0 on screen
    if n.get("port") == "0":
        n.pop("port")
    return n


# msmtp 1.8.23 does not copy allow_from_override from a parent account although
# its manual says a child "will inherit all settings"; bluearrow follows the
# manual (documented in bluearrowrc(5)).
KNOWN_DEVIATIONS = {("isp", "allow_from_override"): "off",
                    ("default", "allow_from_override"): "off"}


def normalise_ours(b):
    n = dict(b)
    if n.get("tls_trust_file") == "":
        del n["tls_trust_file"]  # "trust no CA": msmtp shows (not set)
    if "dsn_notify" in n:
        n["dsn_notify"] = ",".join(sorted(n["dsn_notify"].split(",")))
    return n


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    e = dict(os.environ)
    e["HOME"] = str(home)
    e.pop("BLUEARROW_CONFIG", None)
    return e


@pytest.fixture
def sample(tmp_path):
    p = tmp_path / "msmtprc"
    p.write_text(SAMPLE)
    p.chmod(0o600)
    return str(p)


@pytest.mark.skipif(MSMTP is None, reason="msmtp is not installed")
@pytest.mark.parametrize("account", ["freemail", "isp", "pinned", "lmtp", "default"])
def test_same_settings_as_msmtp(sample, env, account):
    m = normalise_msmtp(msmtp_settings(sample, account, env))
    b = normalise_ours(bluearrow_settings(sample, account, env))
    if "passwordeval" in m and "password" not in b:
        m.pop("password", None)  # msmtp --pretend runs passwordeval and shows '*'
    compared = 0
    for key, value in m.items():
        if (account, key) in KNOWN_DEVIATIONS:
            assert b[key] == KNOWN_DEVIATIONS[(account, key)]
            continue
        if key in ("domain",):  # msmtp shows it after %-expansion; plain here
            assert b[key] == value
            compared += 1
            continue
        assert key in b, f"{account}: bluearrow does not show {key} (msmtp: {value!r})"
        assert b[key] == value, f"{account}: {key}: msmtp {value!r}, bluearrow {b[key]!r}"
        compared += 1
    assert compared >= 20
    # and nothing we print is something msmtp has unset (apart from our own keys
    # and the ones msmtp --pretend does not print)
    extra = set(b) - set(m) - {"partial_delivery", "queue", "set_msgid_header", "from_full_name",
                               "proxy_port", "tls_min_dh_prime_bits", "queue_flush_on_run",
                               "bounce"}
    assert not extra, f"{account}: only bluearrow sets {sorted(extra)}"


def test_check_counts_accounts_and_default(sample, env):
    r = subprocess.run([BLUEARROW, "config", "check", "-C", sample], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"config '{sample}': 5 accounts, default 'isp'\n"


def test_list_prints_names_in_order(sample, env):
    r = subprocess.run([BLUEARROW, "config", "list", "-C", sample], capture_output=True,
                       text=True, env=env, check=True)
    assert r.stdout.split() == ["freemail", "isp", "pinned", "lmtp", "default"]


def test_show_redacts_password(sample, env):
    r = subprocess.run([BLUEARROW, "config", "show", "-C", sample, "-a", "isp"],
                       capture_output=True, text=True, env=env, check=True)
    assert "password <redacted>\n" in r.stdout
    assert "sec ret" not in r.stdout


BROKEN = [
    ("account a\nhost h\nfrobnicate on\n", "3: unknown key 'frobnicate'"),
    ("account a\nhost h\nport 70000\n", "3: invalid value '70000' for 'port'"),
    ("account a\nhost h\ntls maybe\n", "3: invalid value 'maybe' for 'tls'"),
    ("account a\nhost h\naccount a\nhost g\n", "3: account 'a' is already defined"),
    ("account\nhost h\n", "1: missing account name"),
    ("account b : a\nhost h\n", "1: account 'a' is not defined"),
    ("defaults now\n", "1: 'defaults' takes no value"),
]


@pytest.mark.parametrize("text,message", BROKEN)
def test_errors_exit_78_like_msmtp(tmp_path, env, text, message):
    p = tmp_path / "rc"
    p.write_text(text)
    p.chmod(0o600)
    r = subprocess.run([BLUEARROW, "config", "check", "-C", str(p)], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 78
    assert r.stdout == ""
    assert f"{p}:{message}" in r.stderr
    if MSMTP:
        m = subprocess.run([MSMTP, "-C", str(p), "-a", "a", "--pretend", "--", "x@y"],
                           capture_output=True, text=True, env=env)
        assert m.returncode == 78, m.stderr


def test_world_readable_password_file_refused(tmp_path, env):
    p = tmp_path / "rc"
    p.write_text("account default\nhost h\npassword hunter2\n")
    p.chmod(0o644)
    r = subprocess.run([BLUEARROW, "config", "check", "-C", str(p)], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 78
    assert "contains a password and must not be readable by group or others" in r.stderr
    assert "hunter2" not in r.stderr
    p.chmod(0o600)
    r = subprocess.run([BLUEARROW, "config", "check", "-C", str(p)], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr


def test_default_path_order(tmp_path, env):
    home = env["HOME"]
    env["XDG_CONFIG_HOME"] = os.path.join(home, ".config")
    with open(os.path.join(home, ".msmtprc"), "w") as f:
        f.write("account default\nhost from-msmtprc\n")
    r = subprocess.run([BLUEARROW, "config", "show"], capture_output=True, text=True, env=env)
    if os.path.exists("/etc/bluearrow.conf"):
        pytest.skip("this machine has /etc/bluearrow.conf")
    assert r.returncode == 0, r.stderr
    assert "host from-msmtprc\n" in r.stdout
    os.makedirs(os.path.join(home, ".config", "bluearrow"))
    with open(os.path.join(home, ".config", "bluearrow", "config"), "w") as f:
        f.write("account default\nhost from-xdg\n")
    r = subprocess.run([BLUEARROW, "config", "show"], capture_output=True, text=True, env=env)
    assert "host from-xdg\n" in r.stdout
    env["BLUEARROW_CONFIG"] = str(tmp_path / "nope")
    r = subprocess.run([BLUEARROW, "config", "check"], capture_output=True, text=True, env=env)
    assert r.returncode == 78
    assert "BLUEARROW_CONFIG names" in r.stderr


def test_incomplete_template_account_is_a_warning(tmp_path, env):
    p = tmp_path / "rc"
    p.write_text("account common\nauth on\nuser u\naccount default : common\nhost h\n")
    r = subprocess.run([BLUEARROW, "config", "check", "-C", str(p)], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "account 'common'" in r.stderr and "host not set" in r.stderr
    # but a broken default account is an error
    p.write_text("account common\nauth on\naccount default : common\n")
    r = subprocess.run([BLUEARROW, "config", "check", "-C", str(p)], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 78


def test_usage_errors(env):
    r = subprocess.run([BLUEARROW, "config"], capture_output=True, text=True, env=env)
    assert r.returncode == 64
    r = subprocess.run([BLUEARROW, "config", "frob"], capture_output=True, text=True, env=env)
    assert r.returncode == 64
    r = subprocess.run([BLUEARROW, "config", "--help"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "bluearrow config show" in r.stdout


def test_man_page_documents_every_key():
    import re
    src = os.environ.get("BA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
    code = open(os.path.join(src, "core/config.c")).read()
    keys = re.findall(r'\{ "([a-z_0-9]+)", BA_KEY_', code)
    assert len(keys) > 45
    man = open(os.path.join(src, "man/bluearrowrc.5")).read()
    for k in keys:
        assert re.search(r"^\.B[IR]? " + re.escape(k) + r"\b", man, re.M), \
            f"{k} is not in bluearrowrc.5"


@pytest.mark.skipif(MSMTP is None, reason="msmtp is not installed")
@pytest.mark.parametrize("sender", ["joe_smith@freemail.example", "SMITHJOE@isp.example",
                                    "nobody@example.org"])
def test_from_chooses_the_account_msmtp_chooses(sample, env, sender):
    m = subprocess.run([MSMTP, "-C", sample, "-f", sender, "--pretend", "--", "x@y"],
                       capture_output=True, text=True, env=env, check=True)
    host = [l for l in m.stdout.splitlines() if l.startswith("host = ")][0][7:]
    b = subprocess.run([BLUEARROW, "config", "show", "-C", sample, "-f", sender],
                       capture_output=True, text=True, env=env, check=True)
    assert f"\nhost {host}\n" in b.stdout


# Differential test: random files built from valid and invalid values of most
# keys, with defaults sections and parents; both programs must accept or refuse
# the same files and, when they accept, agree on every setting.
POOL = {
    "host": ["h.example", "", '"q.example"'], "port": ["25", "0", "587", "0x1d", "010", "x", ""],
    "timeout": ["off", "5", "0", ""], "protocol": ["smtp", "lmtp", "x"],
    "domain": ["d", "", '" d "'],
    "auth": ["on", "off", "", "plain", "PLAIN", "login", "cram-md5", "xoauth2", "external", "bad"],
    "user": ["u", "", '"a b"'], "tls": ["on", "off", "", "yes"], "tls_starttls": ["on", "off", ""],
    "tls_certcheck": ["on", "off"], "tls_trust_file": ["system", "", "/x", "~/y"],
    "from": ["a@b", "", "*@b"],
    "dsn_notify": ["off", "never", "success", "delay,failure", "failure,failure", "never,success"],
    "dsn_return": ["off", "headers", "full", "hdrs"], "set_from_header": ["auto", "on", "off", ""],
    "set_date_header": ["auto", "off", "on"], "remove_bcc_headers": ["on", "off"],
    "syslog": ["on", "off", "", "LOG_MAIL", "LOG_LOCAL3", "LOG_FOO"], "logfile": ["", "~/l", "-"],
    "aliases": ["", "/a"], "maildomain": ["", "m"], "source_ip": ["", "1.2.3.4"],
    "proxy_host": ["", "p"], "proxy_port": ["", "99", "0"],
    "tls_fingerprint": ["", "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF", "00:11"],
    "tls_min_dh_prime_bits": ["", "512", "-1"], "tls_priorities": ["", "NORMAL"],
    "allow_from_override": ["on", "off"], "undisclosed_recipients": ["on", "off"],
    "tls_nostarttls": [""], "keepbcc": ["on", "off"], "add_missing_from_header": ["on", "off"],
}


def random_file(rnd):
    lines, names = [], []
    for ai in range(rnd.randint(1, 3)):
        if rnd.random() < 0.3:
            lines.append("defaults")
            for _ in range(rnd.randint(1, 3)):
                k = rnd.choice(sorted(POOL))
                lines.append(f"{k} {rnd.choice(POOL[k])}".rstrip())
        parents = ""
        if names and rnd.random() < 0.5:
            parents = " : " + ", ".join(rnd.sample(names, rnd.randint(1, len(names))))
        names.append(f"a{ai}")
        lines.append(f"account a{ai}{parents}")
        if rnd.random() < 0.8:
            lines.append("host h.example")
        for _ in range(rnd.randint(0, 6)):
            k = rnd.choice(sorted(POOL))
            lines.append(f"{k} {rnd.choice(POOL[k])}".rstrip())
    return "\n".join(lines) + "\n", rnd.choice(names)


@pytest.mark.skipif(MSMTP is None, reason="msmtp is not installed")
@pytest.mark.parametrize("seed", range(4))
def test_random_files_agree_with_msmtp(tmp_path, env, seed):
    import random
    rnd = random.Random(seed)
    path = str(tmp_path / "rc")
    # under valgrind (scripts/check's valgrind stage) each run costs ~1 s: a sample suffices there
    for _ in range(5 if os.environ.get("BA_VALGRIND") else 50):
        text, acct = random_file(rnd)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        m = subprocess.run([MSMTP, "-C", path, "-a", acct, "--pretend", "--", "x@y"],
                           capture_output=True, text=True, env=env)
        b = subprocess.run([BLUEARROW, "config", "show", "-C", path, "-a", acct],
                           capture_output=True, text=True, env=env)
        if "host not set" in m.stderr and b.returncode == 0:
            # a deliberate deviation: an account without host (and without relay settings:
            # auth, user, tls, port...) delivers directly to the recipients' MX
            shown = parse_show(b.stdout)
            assert "host" not in shown and "socket" not in shown, text
            assert shown.get("auth", "off") == "off" and shown.get("tls", "off") == "off", text
            continue
        assert (m.returncode == 0) == (b.returncode == 0), \
            f"{text}\nmsmtp: {m.returncode} {m.stderr}\nbluearrow: {b.returncode} {b.stderr}"
        if m.returncode:
            continue
        mm = normalise_msmtp(parse_pretend(m.stdout))
        bb = normalise_ours(parse_show(b.stdout))
        for k, v in mm.items():
            if k == "allow_from_override":  # see KNOWN_DEVIATIONS
                continue
            assert bb.get(k) == v, f"{text}\naccount {acct}: {k}: msmtp {v!r}, ours {bb.get(k)!r}"
