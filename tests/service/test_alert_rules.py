"""The alerting rules in docs/alerts.yml: valid for Prometheus, and firing when (and only when) they should.

Uses ``promtool`` (Debian: ``apt-get install -y --no-install-recommends prometheus``); skips without it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
RULES = HERE.parents[1] / "docs" / "alerts.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian: apt-get install -y --no-install-recommends prometheus)")
    return path


def test_rules_are_valid(promtool):
    run = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_rules_fire_as_specified(promtool):
    run = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=HERE, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
