"""Turn an original's bytes into renditions. Pure Pillow: no I/O, no event loop, picklable
inputs and outputs so it runs in a process pool."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageOps, UnidentifiedImageError

RenditionFormat = Literal["webp", "jpeg", "avif"]

CONTENT_TYPES: dict[str, str] = {"webp": "image/webp", "jpeg": "image/jpeg", "avif": "image/avif"}


@dataclass(frozen=True)
class Preset:
    name: str
    width: int
    height: int
    format: RenditionFormat = "webp"
    quality: int = 80
    fit: Literal["inside", "cover"] = "inside"


@dataclass(frozen=True)
class Limits:
    max_pixels: int = 100_000_000


class ImageRejected(Exception):
    """A permanent failure: the original is not an image we will serve. `code` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Rendition:
    name: str
    width: int
    height: int
    format: RenditionFormat
    data: bytes

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


@dataclass(frozen=True)
class RenderResult:
    width: int  # the original's upright size
    height: int
    renditions: list[Rendition]


def render(data: bytes, *, presets: Sequence[Preset], limits: Limits) -> RenderResult:
    try:
        with Image.open(io.BytesIO(data)) as original:
            if original.width * original.height > limits.max_pixels:
                raise ImageRejected(
                    "pixel_limit_exceeded",
                    f"{original.width}x{original.height} is over {limits.max_pixels} pixels",
                )
            upright = ImageOps.exif_transpose(original)
            upright.load()
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected("pixel_limit_exceeded", str(exc)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected("corrupt_image", f"the image cannot be read: {exc}") from exc
    renditions = [_render_preset(upright, preset) for preset in presets]
    return RenderResult(width=upright.width, height=upright.height, renditions=renditions)


def _render_preset(upright: Image.Image, preset: Preset) -> Rendition:
    image = upright.convert("RGBA" if upright.has_transparency_data else "RGB")
    image.thumbnail((preset.width, preset.height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format=preset.format.upper(), quality=preset.quality)
    return Rendition(
        name=preset.name,
        width=image.width,
        height=image.height,
        format=preset.format,
        data=buffer.getvalue(),
    )
