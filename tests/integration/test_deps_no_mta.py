"""scripts/deps must not replace the user's mail server: no package it installs
is, or depends on, a mail-transport-agent (Postfix, Exim, OpenSMTPD,
nullmailer ...).  bench/ gets smtp-sink from scripts/smtp-sink instead."""
import os
import re
import shutil
import subprocess

import pytest

SRC = os.environ.get("BA_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
MTAS = {"postfix", "exim4", "exim4-daemon-light", "exim4-daemon-heavy", "opensmtpd",
        "nullmailer", "sendmail-bin", "msmtp-mta", "dma", "ssmtp", "courier-mta",
        "mail-transport-agent", "default-mta"}


def deps_packages():
    text = open(os.path.join(SRC, "scripts", "deps")).read()
    m = re.search(r'^PKGS="([^"]*)"', text, re.M)
    assert m, "scripts/deps has no PKGS list"
    return m.group(1).split()


def test_no_mta_in_the_list():
    pkgs = deps_packages()
    assert not MTAS & set(pkgs), MTAS & set(pkgs)
    assert "--no-install-recommends" in open(os.path.join(SRC, "scripts", "deps")).read()


@pytest.mark.skipif(not shutil.which("apt-cache"), reason="no apt-cache")
def test_no_mta_among_the_dependencies():
    r = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                        "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"]
                       + deps_packages(), capture_output=True, text=True, timeout=300)
    names = set(re.findall(r"^\s*(?:\|?\w*Depends: )?<?([a-z0-9][a-z0-9.+-]*)>?\s*$",
                           r.stdout, re.M))
    assert names, r.stderr
    assert not MTAS & names, MTAS & names


def test_bench_uses_the_unpacked_sink():
    for f in ("submit", "startup"):
        text = open(os.path.join(SRC, "bench", f)).read()
        assert "/usr/sbin/smtp-sink" not in text and '"scripts",' in text, f
