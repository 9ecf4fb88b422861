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

# a mark, not a module-level skip: pytest exits 5 ("no tests") when a module is skipped
pytestmark = pytest.mark.skipif(
    not os.environ.get("SUT_SENDMAIL") and not bluearrow_sendmail_works(),
    reason="'bluearrow sendmail --help' fails: the sendmail command does not exist yet")


@pytest.mark.parametrize("path", CASES, ids=[os.path.basename(c)[:-4] for c in CASES])
def test_case(path, tls_certs, tmp_path, request):
    case = proto.Case(path)
    sut = sut_sendmail_cmd()
    if case.msmtp_fails and os.path.basename(sut[0]) == "msmtp":
        # strict: a case msmtp starts passing must lose its msmtp-fails line
        request.applymarker(pytest.mark.xfail(reason="msmtp: " + case.msmtp_fails,
                                              strict=True))
        case.msmtp_fails = None      # let run_case report the real result
    ok, report = proto.run_case(case, tls_certs, sut, str(tmp_path))
    assert ok, report
