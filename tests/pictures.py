"""Pixels in tests: encode and decode in memory, and how different two pictures look."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageChops, ImageStat


def encode(image: Image.Image, image_format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **params)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    """The picture in `data`, fully loaded, its `format` and `info` kept for inspection."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def mean_difference(first: Image.Image, second: Image.Image) -> float:
    """Mean absolute difference per RGB channel, 0 (same) to 255."""
    difference = ImageChops.difference(first.convert("RGB"), second.convert("RGB"))
    return sum(ImageStat.Stat(difference).mean) / 3


def noise_png(width: int, height: int, seed: int = 16) -> bytes:
    """A PNG that does not compress: width x height x 3 bytes, and a bit more. For uploads
    large enough to go in parts."""
    pixels = random.Random(seed).randbytes(width * height * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(out, "PNG", compress_level=1)
    return out.getvalue()
