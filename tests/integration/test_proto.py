"""Every scripted dialogue in tests/proto/cases against the sendmail under test.

The client is $SUT_SENDMAIL when set (e.g. SUT_SENDMAIL=msmtp, where cases
marked msmtp-fails are expected failures), else '$BA_BUILD_DIR/bluearrow
sendmail'; without SUT_SENDMAIL the module is skipped while that command does
not work yet."""
import glob
import os
import sys

import pytest

from conftest import bluearrow_sendmail_works, sut_sendmail_cmd

PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "proto")
sys.path.insert(0, PROTO)
import run as proto  # noqa: E402

CASES = sorted(glob.glob(os.path.join(PROTO, "cases", "*.dlg")))

if not os.environ.get("SUT_SENDMAIL") and not bluearrow_sendmail_works():
    pytest.skip("'bluearrow sendmail --help' fails: the sendmail command does not exist yet",
                allow_module_level=True)


@pytest.mark.parametrize("path", CASES, ids=[os.path.basename(c)[:-4] for c in CASES])
def test_case(path, tls_certs, tmp_path):
    case = proto.Case(path)
    sut = sut_sendmail_cmd()
    if case.msmtp_fails and os.path.basename(sut[0]) == "msmtp":
        pytest.xfail("msmtp: " + case.msmtp_fails)
    ok, report = proto.run_case(case, tls_certs, sut, str(tmp_path))
    assert ok, report
