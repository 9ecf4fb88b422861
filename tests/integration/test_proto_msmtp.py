"""Quick self-check of the tests/proto harness: six representative cases
against msmtp (which passes them), and proof that the harness catches a
client that does not behave as a case says."""
import os
import shutil
import sys

import pytest

PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "proto")
sys.path.insert(0, PROTO)
import run as proto  # noqa: E402

pytestmark = pytest.mark.skipif(not shutil.which("msmtp"), reason="msmtp is not installed")

REPRESENTATIVE = ["0002-helo-fallback", "1003-starttls-injection", "2005-auth-cram-md5",
                  "3001-dot-stuffing", "5002-no-pipelining-lockstep",
                  "5108-smtp-pipelined-data-554"]


def case_path(name):
    return os.path.join(PROTO, "cases", name + ".dlg")


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_msmtp_passes(name, tls_certs, tmp_path):
    ok, report = proto.run_case(proto.Case(case_path(name)), tls_certs, ["msmtp"], str(tmp_path))
    assert ok, report


def _variant(tmp_path, name, edit):
    src = open(case_path(name)).read()
    p = tmp_path / ("x-" + name + ".dlg")
    p.write_text(edit(src))
    return proto.Case(str(p))


def test_harness_detects_wrong_data(tls_certs, tmp_path):
    c = _variant(tmp_path, "0001-plain-ehlo", lambda s: s.replace("expect-data: hello",
                                                                  "expect-data: HELLO"))
    ok, report = proto.run_case(c, tls_certs, ["msmtp"], str(tmp_path))
    assert not ok and "data" in report


def test_harness_detects_wrong_command_and_exit(tls_certs, tmp_path):
    c = _variant(tmp_path, "0001-plain-ehlo", lambda s: s.replace("C: DATA", "C: RSET"))
    ok, report = proto.run_case(c, tls_certs, ["msmtp"], str(tmp_path))
    assert not ok and "expected C: RSET" in report


def test_harness_detects_pipelining_client_in_lockstep_case(tls_certs, tmp_path):
    # msmtp pipelines when PIPELINING is offered: a lock-step expectation must fail
    c = _variant(tmp_path, "5002-no-pipelining-lockstep",
                 lambda s: s.replace("S: 250 mx.test\n", "S: 250-mx.test\nS: 250 PIPELINING\n"))
    ok, report = proto.run_case(c, tls_certs, ["msmtp"], str(tmp_path))
    assert not ok and "not lock-step" in report


def test_harness_detects_sent_secret(tls_certs, tmp_path):
    c = _variant(tmp_path, "2001-auth-plain",
                 lambda s: s + "expect-not-sent: AUTH PLAIN\n")
    ok, report = proto.run_case(c, tls_certs, ["msmtp"], str(tmp_path))
    assert not ok and "client sent" in report


def test_harness_detects_wrong_error_text(tls_certs, tmp_path):
    # msmtp quotes the DATA reply; a case expecting another text must fail on stderr
    c = _variant(tmp_path, "5108-smtp-pipelined-data-554",
                 lambda s: s.replace("expect-stderr: 554 5.5.1 transaction failed",
                                     "expect-stderr: 451 4.3.0 not this one"))
    ok, report = proto.run_case(c, tls_certs, ["msmtp"], str(tmp_path))
    assert not ok and "stderr lacks" in report


def test_harness_detects_follow_up_reply_in_stderr(tls_certs, tmp_path):
    # expect-stderr-not catches a client that reports the wrong reply
    c = _variant(tmp_path, "5108-smtp-pipelined-data-554",
                 lambda s: s.replace("expect-stderr-not: 503 5.5.1",
                                     "expect-stderr-not: 554 5.5.1"))
    ok, report = proto.run_case(c, tls_certs, ["msmtp"], str(tmp_path))
    assert not ok and "stderr contains" in report
