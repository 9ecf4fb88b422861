"""Quick self-check of the tests/proto harness: five representative cases
against msmtp (which passes them), and proof that the harness catches a
client that does not behave as a case says."""
import os
import sys

import pytest

PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "proto")
sys.path.insert(0, PROTO)
import run as proto  # noqa: E402

REPRESENTATIVE = ["0002-helo-fallback", "1003-starttls-injection", "2005-auth-cram-md5",
                  "3001-dot-stuffing", "5002-no-pipelining-lockstep"]


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
