"""Turn an original's bytes into renditions. No I/O, no event loop, picklable inputs and outputs
so it runs in a process pool. libvips does the pixels; Pillow reads the headers (quarantine) and
makes the placeholder from the smallest rendition.

The pipeline, fastest-correct first: quarantine from the header (worker.validation); one decode,
at reduced scale where the format allows, straight to the size of the largest rendition
(worker.decoding); then the presets largest first, each resized from the smallest already-made
rendition that is still at least twice its size (a cascade); then the encodes. Presets that
would come out identical are encoded once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pyvips
from PIL import Image

from worker.decoding import Original, decode_at, decoder_errors_rejected, open_original
from worker.placeholder import PLACEHOLDER_INPUT_SIDE, make_placeholder
from worker.presets import DEFAULT_PRESETS, ENGINE, Preset, RenditionFormat, parse_presets
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
    "ENGINE",
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

# libwebp effort (`method`). Measured on the 4 default renditions of synthetic photos (bench/):
# effort 4 (libwebp's default) costs about twice effort 2, whose bytes stay within +2% of it;
# efforts 0 and 1 are up to +7% on noisy pictures. Effort 2 is the cheapest within +5% bytes.
WEBP_EFFORT: Final = 2
# libvips's default AVIF effort (libaom cpu-used 5).
AVIF_EFFORT: Final = 4

# Resize from an already-made rendition only if it is at least this much larger than the
# target: Lanczos from 2x keeps full sharpness, and the source is 4x fewer pixels than 1x bigger.
CASCADE_MIN_RATIO: Final = 2.0

_KEEP_NO_METADATA: Final = pyvips.enums.ForeignKeep.NONE


def _configure_libvips() -> None:
    # A render process is one core's worth of work (the worker runs one process per core), so
    # libvips's thread pool would only add switching. Its operation cache would keep pixels of
    # past originals alive across renders: off. Loaders other than the ones we name are blocked.
    pyvips.concurrency_set(1)
    pyvips.cache_set_max(0)
    pyvips.block_untrusted_set(True)


_configure_libvips()


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
    def smart_crop(self) -> str | None:
        """libvips's `interesting` for a cover preset that picks its crop from the picture."""
        preset = self.preset
        return preset.crop if preset.fit == "cover" and preset.crop != "centre" else None

    @property
    def output_key(self) -> tuple[object, ...]:
        """Equal keys encode to equal bytes."""
        preset = self.preset
        return (self.size, self.crop, self.smart_crop, preset.format, preset.quality)


@dataclass(frozen=True)
class _Source:
    """The whole upright picture at some scale: the decode, or an uncropped rendition."""

    image: pyvips.Image
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
    with our_pixel_limits_only(), decoder_errors_rejected():
        image, probe = open_checked(
            data, declared_content_type=declared_content_type, limits=limits
        )
        with image:
            original = open_original(data, image, probe)
        plans = [_plan(preset, original.width, original.height) for preset in presets]
        renditions, smallest = _render_plans(original, plans)
    placeholder = make_placeholder(smallest)
    return RenderResult(
        width=original.width,
        height=original.height,
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
        size = _scaled_size(width, height, min(1.0, preset.width / width, preset.height / height))
        return _Plan(preset, size, (0.0, 0.0, float(width), float(height)))
    shrink = min(1.0, width / preset.width, height / preset.height)
    size = (max(1, round(preset.width * shrink)), max(1, round(preset.height * shrink)))
    scale = max(size[0] / width, size[1] / height)
    crop_width, crop_height = size[0] / scale, size[1] / scale
    left, top = (width - crop_width) / 2, (height - crop_height) / 2
    return _Plan(preset, size, (left, top, left + crop_width, top + crop_height))


def _scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


def _render_plans(
    original: Original, plans: Sequence[_Plan]
) -> tuple[list[Rendition], Image.Image]:
    """Renditions in preset order, and the smallest uncropped image made (for the placeholder)."""
    width, height = original.width, original.height
    placeholder_scale = min(1.0, PLACEHOLDER_INPUT_SIDE / max(width, height))
    base_scale = max((plan.scale for plan in plans), default=placeholder_scale)
    decoded = decode_at(original, _scaled_size(width, height, base_scale))
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
    return renditions, _to_pillow(sources[-1].image)


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


def _resize(plan: _Plan, source: _Source) -> pyvips.Image:
    image = source.image
    if plan.smart_crop is not None:
        # libvips picks the box from the picture (its most salient or busiest part): scale the
        # whole picture to cover the box, then let it choose where to cut.
        covering = (
            max(plan.size[0], round(image.width * plan.scale / source.scale_x)),
            max(plan.size[1], round(image.height * plan.scale / source.scale_y)),
        )
        cropped = _scaled(image, covering).smartcrop(*plan.size, interesting=plan.smart_crop)
        return cropped.copy_memory()
    left, top, right, bottom = plan.crop
    x0, x1 = round(left * source.scale_x), round(right * source.scale_x)
    y0, y1 = round(top * source.scale_y), round(bottom * source.scale_y)
    x0, y0 = min(x0, image.width - 1), min(y0, image.height - 1)
    x1, y1 = max(x0 + 1, min(x1, image.width)), max(y0 + 1, min(y1, image.height))
    if (x0, y0, x1, y1) != (0, 0, image.width, image.height):
        image = image.extract_area(x0, y0, x1 - x0, y1 - y0)
    return _scaled(image, plan.size).copy_memory()


def _scaled(image: pyvips.Image, size: tuple[int, int]) -> pyvips.Image:
    """Lanczos to exactly `size`; alpha premultiplied, so transparent pixels lend no colour."""
    if (image.width, image.height) == size:
        return image
    hscale, vscale = size[0] / image.width, size[1] / image.height
    if image.bands == 4:
        resized = image.premultiply().resize(hscale, vscale=vscale).unpremultiply()
        return resized.cast("uchar")
    return image.resize(hscale, vscale=vscale)


def _encode(image: pyvips.Image, preset: Preset) -> bytes:
    quality = preset.quality
    if preset.format == "jpeg":
        if image.bands == 4:
            image = image.flatten(background=list(JPEG_BACKGROUND)).cast("uchar")
        data = image.jpegsave_buffer(Q=quality, optimize_coding=True, keep=_KEEP_NO_METADATA)
    elif preset.format == "webp":
        data = image.webpsave_buffer(Q=quality, effort=WEBP_EFFORT, keep=_KEEP_NO_METADATA)
    else:
        data = image.heifsave_buffer(
            Q=quality, compression="av1", effort=AVIF_EFFORT, bitdepth=8, keep=_KEEP_NO_METADATA
        )
    return bytes(data)


def _to_pillow(image: pyvips.Image) -> Image.Image:
    mode = "RGBA" if image.bands == 4 else "RGB"
    return Image.frombytes(mode, (image.width, image.height), image.write_to_memory())


def _renamed(rendition: Rendition, name: str, shares_with: str | None) -> Rendition:
    return Rendition(
        name=name,
        width=rendition.width,
        height=rendition.height,
        format=rendition.format,
        data=rendition.data,
        shares_with=shares_with,
    )
