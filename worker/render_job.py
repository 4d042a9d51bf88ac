"""The job a render child runs for one original: quarantine first, then the render under a CPU
budget that follows from the image's size.

The child starts the job under the budget's ceiling (`RenderBudget.cpu_max_s`); once the header
has passed quarantine, the budget is lowered to what this many pixels deserve, so a small image
that makes its decoder spin is killed after seconds, not after the ceiling.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyvips

from worker import sandbox
from worker.costs import RenderBudget
from worker.renditions import Limits, Preset, RenderResult, render
from worker.validation import open_checked, our_pixel_limits_only


def render_within_budget(
    data: bytes,
    *,
    presets: Sequence[Preset],
    limits: Limits,
    budget: RenderBudget,
    declared_content_type: str | None,
) -> RenderResult:
    _start_libvips_threads()
    with our_pixel_limits_only():
        image, probe = open_checked(
            data, declared_content_type=declared_content_type, limits=limits
        )
        image.close()
    sandbox.limit_cpu(budget.cpu_s(probe.width * probe.height))
    return render(data, presets=presets, limits=limits, declared_content_type=declared_content_type)


def _start_libvips_threads() -> None:
    """Have libvips's threads running before the job nears its memory cap.

    libvips starts its threads when a write first needs them and stops them after some seconds
    idle. Starting one at the cap fails for want of room for its stack, and its disc sink
    crashes on that failure (SIGSEGV, which would read as a corrupt image). A 1x1 write, about
    a millisecond, starts them while there is room; the render then reuses them."""
    pyvips.Image.black(1, 1).pngsave_buffer()
