"""What a render may cost: the render child's memory cap and CPU-time budget, and the memory the
engine needs per pixel of each accepted format, from which the pixel limit follows.

The figures are measured (`python -m bench.costs`-style runs recorded in README.md, "Hostile
input"): the peak address space a whole render (decode, colour conversion, every preset,
encodes) takes above the child's idle size, divided by the original's pixels, with headroom.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

MiB: Final = 1024 * 1024

DEFAULT_RENDER_MEMORY_BYTES: Final = 1024 * MiB

# Address space of an idle render child (Python, Pillow and its codecs imported), with headroom.
CHILD_BASELINE_BYTES: Final = 160 * MiB

# Peak address space per pixel of the original, by Pillow format name, measured on 24 MP
# (JPEG, PNG, GIF, WebP) and 6 MP (AVIF, HEIF) renders of the default presets, rounded up.
# JPEG is decoded at reduced scale (1/8 of each side for a 24 MP original), except that a
# progressive JPEG keeps every DCT coefficient of the full image until its last scan.
BYTES_PER_PIXEL: Final[Mapping[str, float]] = MappingProxyType(
    {
        "JPEG": 8.0,
        "PNG": 16.0,
        "GIF": 16.0,
        "WEBP": 20.0,
        "AVIF": 24.0,
        "HEIF": 24.0,
    }
)


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


def max_pixels_for(format_name: str, *, memory_bytes: int, data_bytes: int) -> int:
    """The largest original of this format a child capped at `memory_bytes` can render: what is
    left after its idle size and the original's bytes (received, and read once more by the
    decoder), at the format's cost per pixel."""
    available = memory_bytes - CHILD_BASELINE_BYTES - 2 * data_bytes
    per_pixel = BYTES_PER_PIXEL.get(format_name, max(BYTES_PER_PIXEL.values()))
    return max(0, math.floor(available / per_pixel))
