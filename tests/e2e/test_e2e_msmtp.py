"""The end-to-end scenarios (e2e_cases.py) driven by msmtp: proves the private
Dovecot infrastructure and the expectations independently of bluearrow."""
import shutil

import pytest

from conftest import MSMTP
from e2e_cases import *  # noqa: F401,F403  (the shared test functions)

if shutil.which("msmtp") is None:
    pytest.skip("msmtp is not installed (scripts/deps)", allow_module_level=True)


@pytest.fixture
def client():
    return MSMTP
