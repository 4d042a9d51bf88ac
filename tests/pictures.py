"""Pixels in tests: encode and decode in memory, and how different two pictures look."""

from __future__ import annotations

import io

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
