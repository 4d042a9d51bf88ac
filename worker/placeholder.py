"""What a client shows while a rendition loads: a ThumbHash and a dominant colour."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Final

from PIL import Image

from worker.thumbhash import rgba_to_thumbhash

# ThumbHash keeps at most 7 cosines a side, so 32 samples a side lose nothing it can encode,
# and the pure-Python DCT over 32x32 takes a few milliseconds (100x100 would take ~10x).
PLACEHOLDER_INPUT_SIDE: Final = 32
# Few clusters: with many, a photo's main colour splits into shades of similar counts.
_CLUSTERS: Final = 4
_KMEANS_ITERATIONS: Final = 3
_OPAQUE_ENOUGH: Final = 128  # pixels more transparent than this don't count for the colour


@dataclass(frozen=True)
class Placeholder:
    thumbhash: str  # standard base64 of the ThumbHash bytes
    dominant_color: str  # "#rrggbb"


def make_placeholder(image: Image.Image) -> Placeholder:
    """From an upright sRGB RGB/RGBA image; pass the smallest one at hand, it is shrunk first."""
    scale = min(1.0, PLACEHOLDER_INPUT_SIDE / image.width, PLACEHOLDER_INPUT_SIDE / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # BOX averages every source pixel: right for a big reduction, and cheap.
    small = image if size == image.size else image.resize(size, Image.Resampling.BOX)
    rgba = small.convert("RGBA")
    thumbhash = rgba_to_thumbhash(rgba.width, rgba.height, rgba.tobytes())
    return Placeholder(
        thumbhash=base64.b64encode(thumbhash).decode("ascii"),
        dominant_color=dominant_color(rgba),
    )


def dominant_color(image: Image.Image) -> str:
    """The colour of the largest cluster of an image's (mostly) opaque pixels, as #rrggbb.

    Median cut to a few colours, refined by k-means, so each cluster counts the pixels nearest
    to it: a sky of a thousand blues is one cluster, and near-ties between re-encodings of the
    same picture (JPEG vs WebP) still pick the same winner. Meant for small images (<= 32 px).
    """
    raw = image.convert("RGBA").tobytes()
    opaque = b"".join(
        raw[offset : offset + 3]
        for offset in range(0, len(raw), 4)
        if raw[offset + 3] >= _OPAQUE_ENOUGH
    )
    pixels = opaque or b"".join(raw[offset : offset + 3] for offset in range(0, len(raw), 4))
    strip = Image.frombytes("RGB", (len(pixels) // 3, 1), pixels)
    quantized = strip.quantize(_CLUSTERS, Image.Quantize.MEDIANCUT, kmeans=_KMEANS_ITERATIONS)
    counts = quantized.histogram()
    winner = max(range(len(counts)), key=counts.__getitem__)
    palette = quantized.getpalette() or []
    red, green, blue = palette[winner * 3 : winner * 3 + 3]
    return f"#{red:02x}{green:02x}{blue:02x}"
