"""A render that pauses in its render child until a file exists: how a test kills a child in
the middle of a render however fast the machine renders. The handlers pass their render
function to the pool by reference, so this one is importable in the child."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from worker.render_job import render_within_budget
from worker.renditions import RenderResult

POLL_S = 0.02


def started_path(release: Path) -> Path:
    return release.with_suffix(".started")


def render_when_released(release: Path, /, *args: Any, **kwargs: Any) -> RenderResult:
    started_path(release).touch()
    while not release.exists():
        time.sleep(POLL_S)  # no CPU: the child's CPU budget is for the render
    return render_within_budget(*args, **kwargs)
