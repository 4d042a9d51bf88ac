"""What a render costs in memory, by how the original must be decoded: the figures quarantine
turns into pixel limits (the render's memory budget, less the baseline and the input's bytes,
over the bytes a pixel costs).

Measured by bench/render_memory.py (libvips 8.18.7, pyvips 3.2, pillow-heif 1.8.1 / libheif
1.23.6; a fresh process rendering the default presets; peak RSS from /proc VmHWM). Every figure
excludes the input's own bytes, which the worker holds while it renders: add `len(data)`.

Formats libvips streams (sequential access) or decodes at reduced scale cost about the same on
any size: their bytes per pixel are ~0, and a fixed overhead over the baseline covers them. The
rest need the whole frame decoded at once, at a cost per pixel:
  - progressive JPEG: libjpeg keeps every DCT coefficient (2 bytes each) of every component
    until the last scan: 6 bytes a pixel at 4:4:4, 3 at 4:2:0 (read the sampling from the SOF);
  - interlaced PNG: the whole picture at its own depth (3 or 6 bytes for RGB, 4 or 8 for RGBA);
  - HEIC (pillow-heif) and AVIF (libheif in libvips): the decoded frame, in YCbCr then RGB.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

MIB: Final = 1024 * 1024

# A render process after its imports, rendering a tiny PNG.
RENDER_BASELINE_BYTES: Final = 47 * MIB

# Over the baseline, on 10000x10000 (100 MP) RGB inputs, for the formats that stream: what the
# decode window, the 1280 px base picture and the encoders take.
STREAMED_OVERHEAD_BYTES: Final[Mapping[str, int]] = MappingProxyType(
    {
        "JPEG baseline 8-bit": 31 * MIB,
        "PNG 8-bit": 62 * MIB,
        "PNG 16-bit": 79 * MIB,
        "WebP lossy": 62 * MIB,
    }
)

# Bytes per pixel of the formats decoded whole (RGB inputs; with alpha scale PNG by 4/3). JPEG
# and PNG: (peak - baseline - input bytes) / pixels at 100 MP, fixed overhead included. HEIC and
# AVIF (too slow to encode at 100 MP): the slope between 2 MP and 6 MP, plus the fixed overhead
# of FULL_FRAME_FIXED_BYTES.
FULL_FRAME_BYTES_PER_PIXEL: Final[Mapping[str, float]] = MappingProxyType(
    {
        "JPEG progressive 4:4:4": 6.32,
        "PNG interlaced 8-bit": 3.48,
        "PNG interlaced 16-bit": 6.50,
        "HEIC 8-bit": 3.9,  # pillow-heif's RGB buffer, handed to libvips in place
        "AVIF 8-bit": 16.0,  # libheif + the AV1 decoder's frames, then libvips's copy
        "AVIF 10-bit": 19.4,
    }
)
FULL_FRAME_FIXED_BYTES: Final = 16 * MIB  # HEIC and AVIF, besides their bytes per pixel
