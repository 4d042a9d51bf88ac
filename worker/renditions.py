"""Turn an original's bytes into renditions. Pure Pillow: no I/O, no event loop, picklable
inputs and outputs so it runs in a process pool.

The pipeline, fastest-correct first: quarantine from the header (worker.validation); one decode,
at reduced scale for JPEG (worker.decoding); then the presets largest first, each resized from
the smallest already-made rendition that is still at least twice its size (a cascade); then
the encodes. Presets that would come out identical are encoded once.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from PIL import Image

from worker.decoding import decode_upright_srgb, read_orientation, upright_size
from worker.placeholder import make_placeholder
from worker.presets import DEFAULT_PRESETS, Preset, RenditionFormat, parse_presets
from worker.validation import (
    REJECTION_CODES,
    ImageRejected,
    Limits,
    RejectionCode,
    open_checked,
    our_pixel_limits_only,
)

__all__ = [
    "CONTENT_TYPES",
    "DEFAULT_LIMITS",
    "DEFAULT_PRESETS",
    "JPEG_BACKGROUND",
    "REJECTION_CODES",
    "ImageRejected",
    "Limits",
    "Preset",
    "RejectionCode",
    "RenderResult",
    "Rendition",
    "RenditionFormat",
    "parse_presets",
    "render",
]

CONTENT_TYPES: dict[str, str] = {"webp": "image/webp", "jpeg": "image/jpeg", "avif": "image/avif"}

DEFAULT_LIMITS: Final = Limits()

# JPEG has no alpha channel: transparent pixels are composited onto this (white, as a page).
JPEG_BACKGROUND: Final = (255, 255, 255)

# libwebp effort. Measured on the 4 default renditions of a synthetic 12 MP photo (bench/):
# method 4 (Pillow's default) 164 ms / 237,958 B; method 2: 73 ms / 234,636 B (-1.4%);
# method 1: 52 ms, +5.9%; method 0: 42 ms, +7.1%. Method 2 is the cheapest within +5% bytes.
WEBP_METHOD: Final = 2

# Resize from an already-made rendition only if it is at least this much larger than the
# target: Lanczos from 2x keeps full sharpness, and the source is 4x fewer pixels than 1x bigger.
CASCADE_MIN_RATIO: Final = 2.0

_RESAMPLE: Final = Image.Resampling.LANCZOS
_CORRUPT_ERRORS: Final = (OSError, SyntaxError, ValueError, EOFError)


@dataclass(frozen=True)
class Rendition:
    name: str
    width: int
    height: int
    format: RenditionFormat
    data: bytes
    # The name of an earlier rendition in preset order with byte-identical output (the same
    # bytes object): e.g. a 480 px original's "medium" and "large". Storage may keep one copy.
    shares_with: str | None = None

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


@dataclass(frozen=True)
class RenderResult:
    width: int  # the original's upright size
    height: int
    renditions: list[Rendition]
    # Always set by `render`; defaults keep hand-built results (fakes, tests) short.
    format: str | None = None  # the sniffed Pillow format of the original, e.g. "JPEG"
    frames: int = 1  # > 1: animated (or a multi-image HEIF); renditions show the first frame
    thumbhash: str | None = None  # base64; decodes to a blurred placeholder with aspect ratio
    dominant_color: str | None = None  # "#rrggbb"


@dataclass(frozen=True)
class _Plan:
    preset: Preset
    size: tuple[int, int]
    crop: tuple[float, float, float, float]  # in the upright original's pixels

    @property
    def scale(self) -> float:
        return self.size[0] / (self.crop[2] - self.crop[0])

    @property
    def output_key(self) -> tuple[object, ...]:
        """Equal keys encode to equal bytes."""
        preset = self.preset
        return (self.size, self.crop, preset.format, preset.quality)


@dataclass(frozen=True)
class _Source:
    """The whole upright picture at some scale: the decode, or an uncropped rendition."""

    image: Image.Image
    scale_x: float
    scale_y: float


def render(
    data: bytes,
    *,
    presets: Sequence[Preset] = DEFAULT_PRESETS,
    limits: Limits = DEFAULT_LIMITS,
    declared_content_type: str | None = None,
) -> RenderResult:
    """Validate, then render every preset. Raises ImageRejected for an image we will not serve;
    any other exception is a bug or a resource problem, not a verdict on the image."""
    with our_pixel_limits_only():
        image, probe = open_checked(
            data, declared_content_type=declared_content_type, limits=limits
        )
        with image:
            try:
                orientation = read_orientation(image)
                width, height = upright_size(image.size, orientation)
                plans = [_plan(preset, width, height) for preset in presets]
                min_scale = max((plan.scale for plan in plans), default=0.0)
                decoded = decode_upright_srgb(image, orientation=orientation, min_scale=min_scale)
            except _CORRUPT_ERRORS as exc:
                raise ImageRejected(
                    RejectionCode.CORRUPT_IMAGE, f"the image cannot be decoded: {exc}"
                ) from exc
    renditions, smallest = _render_plans(decoded, plans, width, height)
    placeholder = make_placeholder(smallest)
    return RenderResult(
        width=width,
        height=height,
        renditions=renditions,
        format=probe.format,
        frames=probe.frames,
        thumbhash=placeholder.thumbhash,
        dominant_color=placeholder.dominant_color,
    )


def _plan(preset: Preset, width: int, height: int) -> _Plan:
    """Output size and crop for one preset. Never upscales: an original smaller than an
    `inside` box keeps its size; for `cover`, the largest crop of the box's shape."""
    if preset.fit == "inside":
        scale = min(1.0, preset.width / width, preset.height / height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        return _Plan(preset, size, (0.0, 0.0, float(width), float(height)))
    shrink = min(1.0, width / preset.width, height / preset.height)
    size = (max(1, round(preset.width * shrink)), max(1, round(preset.height * shrink)))
    scale = max(size[0] / width, size[1] / height)
    crop_width, crop_height = size[0] / scale, size[1] / scale
    left, top = (width - crop_width) / 2, (height - crop_height) / 2
    return _Plan(preset, size, (left, top, left + crop_width, top + crop_height))


def _render_plans(
    decoded: Image.Image, plans: Sequence[_Plan], width: int, height: int
) -> tuple[list[Rendition], Image.Image]:
    """Renditions in preset order, and the smallest uncropped image made (for the placeholder)."""
    sources = [_Source(decoded, decoded.width / width, decoded.height / height)]
    encoded: dict[tuple[object, ...], Rendition] = {}
    for plan in sorted(plans, key=lambda plan: plan.scale, reverse=True):
        if plan.output_key in encoded:
            continue
        resized = _resize(plan, _pick_source(plan, sources))
        if plan.preset.fit == "inside":
            sources.append(_Source(resized, resized.width / width, resized.height / height))
        encoded[plan.output_key] = Rendition(
            name=plan.preset.name,
            width=resized.width,
            height=resized.height,
            format=plan.preset.format,
            data=_encode(resized, plan.preset),
        )
    renditions = []
    for plan in plans:
        first = encoded[plan.output_key]
        shares_with = None if first.name == plan.preset.name else first.name
        renditions.append(_renamed(first, plan.preset.name, shares_with))
    return renditions, sources[-1].image


def _pick_source(plan: _Plan, sources: Sequence[_Source]) -> _Source:
    """The smallest source still CASCADE_MIN_RATIO times the target, else the decode."""
    for source in reversed(sources[1:]):
        crop_width = (plan.crop[2] - plan.crop[0]) * source.scale_x
        crop_height = (plan.crop[3] - plan.crop[1]) * source.scale_y
        # One pixel of slack: 853 px rounds to 427, not 426.5, and is still a 2x source.
        wide_enough = crop_width >= CASCADE_MIN_RATIO * plan.size[0] - 1
        if wide_enough and crop_height >= CASCADE_MIN_RATIO * plan.size[1] - 1:
            return source
    return sources[0]


def _resize(plan: _Plan, source: _Source) -> Image.Image:
    left, top, right, bottom = plan.crop
    box = (
        left * source.scale_x,
        top * source.scale_y,
        right * source.scale_x,
        bottom * source.scale_y,
    )
    if plan.size == source.image.size and box == (0, 0, *source.image.size):
        return source.image  # already the right size (the original is smaller than the box)
    return source.image.resize(plan.size, _RESAMPLE, box=box)


def _encode(image: Image.Image, preset: Preset) -> bytes:
    buffer = io.BytesIO()
    if preset.format == "jpeg":
        if image.mode == "RGBA":
            flat = Image.new("RGB", image.size, JPEG_BACKGROUND)
            flat.paste(image, mask=image.getchannel("A"))
            image = flat
        image.save(buffer, format="JPEG", quality=preset.quality)
    elif preset.format == "webp":
        image.save(buffer, format="WEBP", quality=preset.quality, method=WEBP_METHOD)
    else:
        image.save(buffer, format="AVIF", quality=preset.quality)
    return buffer.getvalue()


def _renamed(rendition: Rendition, name: str, shares_with: str | None) -> Rendition:
    return Rendition(
        name=name,
        width=rendition.width,
        height=rendition.height,
        format=rendition.format,
        data=rendition.data,
        shares_with=shares_with,
    )
