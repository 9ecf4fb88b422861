"""The account a message goes through: -a, else the account whose from matches
the envelope sender (-f), else the one whose from matches the message's From
field (git send-email and mutt set only the header), else the default."""
import os

import pytest

from conftest import sut_sendmail_cmd

SUT_IS_MSMTP = os.path.basename(sut_sendmail_cmd()[0]) == "msmtp"

pytestmark = pytest.mark.skipif(SUT_IS_MSMTP, reason="msmtp chooses only by the envelope sender")


def two_accounts(home, work):
    return ("account home\nhost 127.0.0.1\nport %d\ntimeout 10\nfrom me@home.test\n"
            "account work\nhost 127.0.0.1\nport %d\ntimeout 10\nfrom *@work.test\n"
            "account default : home\n" % (home.port, work.port))


MSG = b"From: Jo <jo@work.test>\nTo: b@example.test\nSubject: s\n\nbody\n"


def test_from_field_chooses_the_account(smtp_server, write_config, sendmail):
    home, work = smtp_server(), smtp_server()
    cfg = write_config(text=two_accounts(home, work))
    # the pattern account has no address of its own: the sender is the From field's
    r = sendmail("-C", cfg, "-t", "-i", "--read-envelope-from", input=MSG)
    assert r.returncode == 0, r.stderr
    assert work.wait_txn().mail_from == "jo@work.test" and home.txns == []


def test_from_field_chooses_without_envelope_option(smtp_server, write_config, sendmail):
    home, work = smtp_server(), smtp_server()
    text = two_accounts(home, work).replace("from *@work.test", "from jo@work.test")
    cfg = write_config(text=text)
    r = sendmail("-C", cfg, "-i", "b@example.test", input=MSG)  # git send-email's call
    assert r.returncode == 0, r.stderr
    assert work.wait_txn().mail_from == "jo@work.test" and home.txns == []


def test_envelope_sender_wins_over_from_field(smtp_server, write_config, sendmail):
    home, work = smtp_server(), smtp_server()
    text = two_accounts(home, work).replace("from *@work.test", "from jo@work.test")
    cfg = write_config(text=text)
    r = sendmail("-C", cfg, "-i", "-f", "me@home.test", "b@example.test", input=MSG)
    assert r.returncode == 0, r.stderr
    assert home.wait_txn().mail_from == "me@home.test" and work.txns == []


def test_named_account_wins(smtp_server, write_config, sendmail):
    home, work = smtp_server(), smtp_server()
    text = two_accounts(home, work).replace("from *@work.test", "from jo@work.test")
    cfg = write_config(text=text)
    r = sendmail("-C", cfg, "-i", "-a", "home", "b@example.test", input=MSG)
    assert r.returncode == 0, r.stderr
    assert home.wait_txn().mail_from == "me@home.test" and work.txns == []


def test_unknown_from_field_uses_default(smtp_server, write_config, sendmail):
    home, work = smtp_server(), smtp_server()
    cfg = write_config(text=two_accounts(home, work))
    msg = MSG.replace(b"jo@work.test", b"x@elsewhere.test")
    r = sendmail("-C", cfg, "-i", "b@example.test", input=msg)
    assert r.returncode == 0, r.stderr
    assert home.wait_txn().mail_from == "me@home.test" and work.txns == []


def test_logfile_dash_is_standard_output(smtp_server, write_config, sendmail):
    """msmtp's `logfile -`: the line goes to standard output, success and failure alike."""
    srv = smtp_server()
    cfg = write_config(srv, from_="a@example.test", logfile="-")
    r = sendmail("-C", cfg, "-i", "b@example.test", input=MSG)
    assert r.returncode == 0, r.stderr
    line = r.stdout.decode()
    assert line.count("\n") == 1 and "recipients=b@example.test" in line, line
    assert "from=a@example.test" in line and "exitcode=EX_OK" in line and "smtpstatus=250" in line
    srv.stop()
    r = sendmail("-C", cfg, "-i", "b@example.test", input=MSG)
    assert r.returncode != 0
    assert "exitcode=EX_" in r.stdout.decode() and "EX_OK" not in r.stdout.decode()


def test_from_field_account_settings_shape_the_message(smtp_server, write_config, sendmail):
    """The account the From field chooses is the one whose header settings apply, not the
    default's: one parse of the header decides the account, then the rest is read for it."""
    home, work = smtp_server(), smtp_server()
    text = (two_accounts(home, work).replace("from *@work.test", "from jo@work.test")
            .replace("from me@home.test\n", "from me@home.test\nundisclosed_recipients on\n"
                     "set_date_header off\n"))
    cfg = write_config(text=text)
    r = sendmail("-C", cfg, "-i", "-t", input=MSG)
    assert r.returncode == 0, r.stderr
    data = work.wait_txn().data
    assert b"To: b@example.test" in data and b"undisclosed-recipients" not in data
    assert b"\r\nDate: " in data or data.startswith(b"Date: ")
