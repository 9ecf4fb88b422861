"""Private instances of real mail software for the end-to-end tests.

Dovecot (Debian dovecot-core, dovecot-submissiond, dovecot-lmtpd) runs from its
own configuration in a temporary directory: its own base_dir, state_dir, log
file, passwd-file passdb/userdb and Maildirs, listening only on 127.0.0.1 on
ports picked free at start.  Nothing under /etc is read or written and the
system's ports (25, 587, 24, 143...) are never touched.

    dc = Dovecot(certs, relay_port=sink.port).start()
    dc.submission_port   # STARTTLS + AUTH (PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256)
    dc.lmtp_port         # LMTP over TCP; dc.lmtp_socket the unix-domain socket
    dc.wait_delivery("user", after=before)   # path of the new Maildir file
    dc.stop()

Users (passwd-file): "user"/"password" stored as {PLAIN}; "scram"/"secret"
stored only as a {SCRAM-SHA-256} hash made by `doveadm pw` (so only SCRAM and
the mechanisms Dovecot can check against that hash work for it); "other" /
"password".  auth_username_format=%Ln, so "user@mx.test" is "user".
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"


def have_dovecot():
    """True when dovecot with the submission and LMTP services is installed."""
    libexec = "/usr/lib/dovecot"
    return (os.access(DOVECOT, os.X_OK) and os.path.exists(os.path.join(libexec, "submission"))
            and os.path.exists(os.path.join(libexec, "lmtp")))


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago (for daemons that need a number in
    their configuration; start() retries when it was taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def make_base_dir(prefix):
    """A fresh directory under $TMPDIR (or /tmp), world-traversable so that the
    unprivileged users the daemons switch to can reach their files."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return d


def _wait_port(port, deadline, proc, host="127.0.0.1"):
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def mail_owner():
    """(uid, gid) the Maildirs belong to: the 'mail' system user when running as
    root (Dovecot refuses to deliver as root), else the current user."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        pw = pwd.getpwnam("mail")
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        return 65534, 65534


CONF = """\
# private Dovecot instance for bluearrow's end-to-end tests (generated)
base_dir = {base}/run
state_dir = {base}/state
instance_name = bluearrow-e2e-{tag}
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
protocols = submission lmtp
listen = 127.0.0.1
{nonroot}
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
first_valid_uid = 1
first_valid_gid = 1
auth_mechanisms = plain login cram-md5 scram-sha-1 scram-sha-256
auth_username_format = %Ln
disable_plaintext_auth = yes
auth_verbose = yes
passdb {{
  driver = passwd-file
  args = {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = {base}/passwd
}}
mail_location = maildir:~/Maildir
hostname = mx.test
postmaster_address = postmaster@mx.test
submission_relay_host = 127.0.0.1
submission_relay_port = {relay_port}
submission_max_mail_size = {max_size}
service submission-login {{
  inet_listener submission {{
    address = 127.0.0.1
    port = {submission_port}
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service auth {{
  unix_listener auth-client {{
    mode = 0666
  }}
}}
"""


class Dovecot:
    """One private Dovecot: submission (STARTTLS, AUTH, relaying to
    127.0.0.1:relay_port) and LMTP (TCP and unix socket) into Maildirs."""

    PASSWORDS = {"user": "password", "other": "password", "scram": "secret"}

    def __init__(self, certs, relay_port=None, max_size=0, base=None):
        self.certs = certs
        self.relay_port = relay_port or 9  # discard: submission fails visibly without a relay
        self.max_size = max_size
        self.base = base
        self._own_base = base is None
        self.proc = None
        self.submission_port = self.lmtp_port = None

    # -- files
    def _write_passwd(self):
        uid, gid = mail_owner()
        home = os.path.join(self.base, "home")
        os.makedirs(home, exist_ok=True)
        os.chown(home, uid, gid)
        scram = subprocess.run([DOVEADM, "-c", self.conf, "pw", "-s", "SCRAM-SHA-256", "-p",
                                self.PASSWORDS["scram"]], capture_output=True, text=True,
                               check=True).stdout.strip()
        assert scram.startswith("{SCRAM-SHA-256}"), scram
        lines = []
        for user, pw in sorted(self.PASSWORDS.items()):
            stored = scram if user == "scram" else "{PLAIN}" + pw
            lines.append("%s:%s:%d:%d::%s/%s" % (user, stored, uid, gid, home, user))
        with open(os.path.join(self.base, "passwd"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def _write_conf(self):
        nonroot = ""
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.getuid()).pw_name
            nonroot = "default_internal_user = %s\ndefault_login_user = %s\n" % (me, me)
        text = CONF.format(base=self.base, tag=os.path.basename(self.base), nonroot=nonroot,
                           cert=self.certs.chain("server"), key=self.certs.key("server"),
                           relay_port=self.relay_port, max_size=self.max_size,
                           submission_port=self.submission_port, lmtp_port=self.lmtp_port)
        with open(self.conf, "w") as f:
            f.write(text)

    @property
    def conf(self):
        return os.path.join(self.base, "dovecot.conf")

    @property
    def lmtp_socket(self):
        return os.path.join(self.base, "run", "lmtp")

    def log(self):
        try:
            with open(os.path.join(self.base, "dovecot.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # -- life cycle
    def start(self, timeout=15):
        if self.base is None:
            self.base = make_base_dir("ba-e2e-dovecot-")
        last = ""
        for _attempt in range(3):
            self.submission_port, self.lmtp_port = free_port(), free_port()
            self._write_conf()
            self._write_passwd()
            self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + timeout
            ok = (_wait_port(self.submission_port, deadline, self.proc)
                  and _wait_port(self.lmtp_port, deadline, self.proc))
            while ok and not os.path.exists(self.lmtp_socket) and time.monotonic() < deadline:
                time.sleep(0.05)
            if ok and os.path.exists(self.lmtp_socket):
                return self
            last = self._kill() + self.log()
        raise RuntimeError("dovecot did not start:\n" + last)

    def _kill(self):
        err = ""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            err = self.proc.stderr.read().decode(errors="replace")
            self.proc.stderr.close()
            self.proc = None
        return err

    def stop(self):
        self._kill()
        if self._own_base and self.base and not os.environ.get("BA_E2E_KEEP"):
            shutil.rmtree(self.base, ignore_errors=True)

    # -- Maildirs
    def maildir(self, user):
        return os.path.join(self.base, "home", user, "Maildir")

    def deliveries(self, user):
        """Sorted paths of the messages in user's INBOX (new/ and cur/)."""
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir(user), sub)
            if os.path.isdir(d):
                out += [os.path.join(d, n) for n in os.listdir(d) if not n.startswith(".")]
        return sorted(out)

    def wait_delivery(self, user, after=(), timeout=10):
        """The path of a message delivered to user that is not in `after`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = [p for p in self.deliveries(user) if p not in after]
            if new:
                return new[0]
            time.sleep(0.05)
        raise AssertionError("nothing delivered to %s within %ss; dovecot log:\n%s"
                             % (user, timeout, self.log()[-3000:]))


def split_prepended(delivered, original):
    """Checks that `delivered` is `original` (CRLF) with only header fields put
    in front.  A Maildir file has LF line ends: then original is compared with
    its CRLFs made LF.  Returns the names of the fields put in front, in order;
    raises AssertionError when the message itself differs."""
    nl = b"\r\n" if delivered.endswith(original) else b"\n"
    want = original if nl == b"\r\n" else original.replace(b"\r\n", b"\n")
    assert delivered.endswith(want), (
        "delivered message differs from the one sent:\n--- sent\n%r\n--- delivered\n%r"
        % (want[:2000], delivered[:2000]))
    head = delivered[:len(delivered) - len(want)]
    names = []
    for line in head.split(nl)[:-1] if head else []:
        if line[:1] in (b" ", b"\t"):
            assert names, "continuation line first in %r" % head
            continue
        name, colon, _ = line.partition(b":")
        assert colon and name and b" " not in name, "not a header field: %r" % line
        names.append(name.decode())
    assert not head or head.endswith(nl)
    return names
