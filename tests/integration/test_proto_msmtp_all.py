"""Every scripted dialogue in tests/proto/cases against msmtp, strict about
the msmtp-fails lines: an unmarked case msmtp fails is a failure (mark it, or
make the case fair to both clients), and a marked case msmtp passes is a
failure too (the line is stale: remove it).  A marked case msmtp fails is
reported as xfail with the marker's reason.

The cases run four at a time (most of their time is spent waiting on
timeouts), so the whole set takes about a quarter of a serial run.

The counts that README.md and tests/proto/FORMAT.md give for msmtp are
checked against the case files here too (without msmtp)."""
import concurrent.futures
import glob
import os
import re
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
PROTO = os.path.join(HERE, "..", "proto")
sys.path.insert(0, PROTO)
import run as proto  # noqa: E402

CASES = sorted(glob.glob(os.path.join(PROTO, "cases", "*.dlg")))
MSMTP = shutil.which("msmtp")
WORKERS = 4


@pytest.fixture(scope="module")
def msmtp_results(tls_certs, tmp_path_factory):
    """{case path: future of (ok, report)}, every case started at once on a
    pool; each run is told nothing about its marker, so ok is the real result."""
    def one(path):
        case = proto.Case(path)
        case.msmtp_fails = None
        workdir = str(tmp_path_factory.mktemp(case.name))
        return proto.run_case(case, tls_certs, [MSMTP], workdir)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS)
    # the longest cases (hangs cut by the harness) first, so they overlap the rest
    order = sorted(CASES, key=lambda p: -proto.Case(p).timeout)
    futures = {p: pool.submit(one, p) for p in order}
    yield futures
    pool.shutdown(wait=True)


@pytest.mark.skipif(MSMTP is None, reason="msmtp is not installed")
@pytest.mark.parametrize("path", CASES, ids=[os.path.basename(c)[:-4] for c in CASES])
def test_case_with_msmtp(path, msmtp_results):
    marker = proto.Case(path).msmtp_fails
    ok, report = msmtp_results[path].result()
    if marker and ok:
        pytest.fail("msmtp passes this case: its 'msmtp-fails: %s' line is stale, remove it\n%s"
                    % (marker, report))
    if marker:
        pytest.xfail("msmtp: " + marker)
    assert ok, ("msmtp fails this case without an msmtp-fails line: add one saying what "
                "msmtp does, or make the case fair to both clients\n" + report)


def _counts():
    marked = sum(1 for p in CASES if proto.Case(p).msmtp_fails)
    return marked, len(CASES)


def test_readme_counts_match_the_cases():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    m = re.search(r"msmtp 1\.8\.23 fails (\d+) of the (\d+) cases", " ".join(text.split()))
    assert m, "README.md lacks 'msmtp 1.8.23 fails M of the T cases'"
    marked, total = _counts()
    assert (int(m.group(1)), int(m.group(2))) == (marked, total), (
        "README.md says msmtp fails %s of %s cases; tests/proto/cases has %d msmtp-fails "
        "lines in %d cases: update README.md and tests/proto/FORMAT.md"
        % (m.group(1), m.group(2), marked, total))


def test_format_counts_match_the_cases():
    text = open(os.path.join(PROTO, "FORMAT.md"), encoding="utf-8").read()
    m = re.search(r"(\d+) pass, (\d+) are known failures of the (\d+) cases",
                  " ".join(text.split()))
    assert m, "FORMAT.md lacks 'N pass, M are known failures of the T cases'"
    marked, total = _counts()
    got = tuple(int(x) for x in m.groups())
    assert got == (total - marked, marked, total), (
        "FORMAT.md says %d pass, %d known failures of %d; tests/proto/cases has %d "
        "msmtp-fails lines in %d cases: update FORMAT.md and README.md"
        % (got + (marked, total)))
