"""The job a render child runs for one original: quarantine first, then the render under a CPU
budget that follows from the image's size.

The child starts the job under the budget's ceiling (`RenderBudget.cpu_max_s`); once the header
has passed quarantine, the budget is lowered to what this many pixels deserve, so a small image
that makes its decoder spin is killed after seconds, not after the ceiling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from worker import sandbox
from worker.costs import RenderBudget
from worker.renditions import ImageRejected, Limits, Preset, RenderResult, render
from worker.validation import open_checked, our_pixel_limits_only

# How libvips (vips_tracked_malloc, vips_malloc) says an allocation failed.
_OUT_OF_MEMORY_SIGNS: Final = ("failed to allocate", "out of memory")


def render_within_budget(
    data: bytes,
    *,
    presets: Sequence[Preset],
    limits: Limits,
    budget: RenderBudget,
    declared_content_type: str | None,
) -> RenderResult:
    with our_pixel_limits_only():
        image, probe = open_checked(
            data, declared_content_type=declared_content_type, limits=limits
        )
        image.close()
    sandbox.limit_cpu(budget.cpu_s(probe.width * probe.height))
    try:
        return render(
            data, presets=presets, limits=limits, declared_content_type=declared_content_type
        )
    except ImageRejected as rejected:
        # libvips reports a failed allocation as an error like any other, which the engine
        # calls corrupt; under the address-space cap it is the memory budget running out.
        if any(sign in rejected.message for sign in _OUT_OF_MEMORY_SIGNS):
            raise MemoryError(rejected.message) from rejected
        raise
