"""What a render may cost: the render child's memory cap and CPU-time budget, and the memory the
engine needs per pixel of each accepted format, from which the pixel limit follows.

The figures are measured: the peak address space (what `RLIMIT_AS` counts) a whole render
(decode, colour conversion, every preset, encodes) takes in the sandbox, at two sizes of
original; the difference per pixel is the cost, the rest the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

MiB: Final = 1024 * 1024

DEFAULT_RENDER_MEMORY_BYTES: Final = 1024 * MiB

# Address space of a render child before its first job, libvips initialised, with headroom.
# Measured: 89 MiB idle, about 150 MiB more once libvips has run any render at all.
CHILD_BASELINE_BYTES: Final = 256 * MiB

# Address space per pixel of the original a render takes above the baseline, by Pillow format
# name, measured in the render sandbox at 3 MP and 24 MP (AVIF, HEIF: 0.75 and 6 MP) with the
# default presets, then doubled and rounded up (the slope between the two sizes: JPEG 0.0,
# progressive JPEG 0.2, PNG 0.0, GIF 1.5, WebP 7.8, AVIF 5.4, HEIF 3.1). libvips shrinks JPEG
# on load and streams PNG, so their cost per pixel is near nothing, unless the decoder must
# hold the whole frame first (`WHOLE_FRAME_BYTES_PER_PIXEL`).
BYTES_PER_PIXEL: Final[Mapping[str, float]] = MappingProxyType(
    {
        "JPEG": 1.0,
        "PNG": 1.0,
        "GIF": 6.0,  # 4.9 at 100 MP (RSS, bench/render_memory.py): the whole frame as RGBA
        "WEBP": 16.0,
        "AVIF": 20.0,  # the engine's own measurement: 16.0 at 8 bits, 19.4 at 10 (RSS)
        "HEIF": 12.0,
    }
)
# A JPEG of more than one scan (progressive, or baseline with its components in separate scans)
# keeps every DCT coefficient until its last scan (2 bytes each, up to 4 components at full
# resolution: 8 per pixel); an interlaced PNG is decoded whole (up to 16-bit RGBA: 8 per pixel)
# and then converted. Upper bounds, not measurements of friendly inputs.
WHOLE_FRAME_BYTES_PER_PIXEL: Final = 16.0


@dataclass(frozen=True)
class RenderBudget:
    """One render's allowance: the child's memory cap (for its whole life) and CPU time (per
    image: a base for reading headers and encoding, plus a share per megapixel, capped)."""

    memory_bytes: int = DEFAULT_RENDER_MEMORY_BYTES
    cpu_base_s: float = 2.0
    cpu_per_megapixel_s: float = 0.25
    cpu_max_s: float = 30.0

    def cpu_s(self, pixels: int) -> float:
        return min(self.cpu_max_s, self.cpu_base_s + self.cpu_per_megapixel_s * pixels / 1e6)


def max_pixels_for(
    format_name: str, *, memory_bytes: int, data_bytes: int, whole_frame: bool = False
) -> int:
    """The largest original of this format a child capped at `memory_bytes` can render: what is
    left after its baseline and the original's bytes (received, and held by the decoder), at
    the format's cost per pixel."""
    available = memory_bytes - CHILD_BASELINE_BYTES - 2 * data_bytes
    per_pixel = BYTES_PER_PIXEL.get(format_name, WHOLE_FRAME_BYTES_PER_PIXEL)
    if whole_frame:
        per_pixel = max(per_pixel, WHOLE_FRAME_BYTES_PER_PIXEL)
    return max(0, math.floor(available / per_pixel))
