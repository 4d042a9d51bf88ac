"""bench/load.py as a user runs it, briefly: its promises (no image lost, no 5xx) hold."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(400)]


def test_load_bench_loses_no_image_and_answers_no_5xx() -> None:
    finished = subprocess.run(
        [sys.executable, "bench/load.py", "--seconds", "10", "--clients", "4", "--side", "800"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=360,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    result = json.loads(finished.stdout)
    assert result["images_ready"] > 0
    assert result["images_lost"] == 0
    assert result["server_errors"] == 0
