"""The reply of the first failing command is the error, against aiosmtpd.

aiosmtpd, like Postfix, answers the RCPT and DATA pipelined after a refused
MAIL with 503; bluearrow must report the MAIL reply and exit by its class
(tests/proto/cases 51xx script the same dialogues byte by byte)."""
import re

import pytest

MSG = (b"From: a@x.test\r\nTo: b@y.test\r\nDate: Sun, 29 Nov 2026 00:00:00 +0000\r\n"
       b"Message-ID: <1@x.test>\r\nSubject: t\r\n\r\nbody\r\n")


@pytest.fixture(autouse=True)
def _built(bluearrow):
    return bluearrow


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
@pytest.mark.parametrize("reply,code", [("451 4.3.0 sender check deferred", 75),
                                        ("550 5.7.1 sender refused", 69)],
                         ids=["451", "550"])
def test_refused_mail_is_the_error(reply, code, pipelining, smtp_server, write_config,
                                   sendmail):
    srv = smtp_server(pipelining=pipelining, mail_reply=reply)
    cfg = write_config(srv)
    r = sendmail("-C", cfg, "-f", "a@x.test", "b@y.test", "c@y.test", input=MSG)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == code, err
    assert reply in err
    # no 503 reply in the message (a port number such as 35037 may contain the digits)
    assert not re.search(r"\b503\b", err), err
    assert srv.conns[0].txns == []
