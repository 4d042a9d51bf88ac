"""Rendition presets: configuration, read from `PICFORGE_PRESETS` as JSON by the worker settings."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Final, Literal, cast, get_args

import pillow_heif
import pyvips

RenditionFormat = Literal["webp", "jpeg", "avif"]
Fit = Literal["inside", "cover"]
# Where a `cover` preset cuts: the centre, or libvips's smart crops: `attention` keeps the most
# salient part (skin tones, saturated colour, edges), `entropy` the busiest.
Crop = Literal["centre", "attention", "entropy"]

# Bump when the render pipeline changes its output bytes (a resize kernel, an encoder setting).
ENGINE_REVISION: Final = 2  # 2: nclx Display P3 converted to sRGB
# What makes a rendition's bytes besides its preset: our pipeline, libvips (and the codecs
# its wheel bundles) and, for HEIC, pillow-heif's libheif. Part of every preset's version.
ENGINE: Final = (
    f"picforge-render/{ENGINE_REVISION} libvips/{pyvips.version(0)}.{pyvips.version(1)}."
    f"{pyvips.version(2)} libheif/{pillow_heif.libheif_version()}"
)

# Preset names end up in storage keys and URLs.
_NAME_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MAX_PRESET_SIDE: Final = 8192
_FIELDS: Final = ("name", "width", "height", "format", "quality", "fit", "crop")


@dataclass(frozen=True)
class Preset:
    """A box to fit the upright original in, and how to encode the result.

    `inside` keeps the whole picture within width x height; `cover` fills the box exactly,
    cropping the overflow where `crop` says (around the centre by default). Neither ever
    upscales.
    """

    name: str
    width: int
    height: int
    format: RenditionFormat = "webp"
    quality: int = 80
    fit: Fit = "inside"
    crop: Crop = "centre"  # `cover` only

    @property
    def version(self) -> str:
        """Names this preset's settings and the render engine in its renditions' storage keys:
        a preset changed under the same name, or a new engine, writes new keys, so a rendition
        URL never comes to mean other bytes, and clients and CDNs may cache it forever."""
        settings = f"{self.width}x{self.height} {self.format} q{self.quality} {self.fit}"
        if self.fit == "cover":
            settings += f" {self.crop}"
        return hashlib.sha256(f"{settings} {ENGINE}".encode()).hexdigest()[:8]


DEFAULT_PRESETS: Final[tuple[Preset, ...]] = (
    Preset("thumb", 128, 128),
    Preset("small", 320, 320),
    Preset("medium", 640, 640),
    Preset("large", 1280, 1280),
)


def parse_presets(json_text: str) -> tuple[Preset, ...]:
    """Parse a JSON array of preset objects, e.g.
    `[{"name": "thumb", "width": 128, "height": 128, "format": "webp", "quality": 80,
    "fit": "cover", "crop": "attention"}]`; format, quality, fit and crop may be left out.
    Raises ValueError naming the offending preset and field.
    """
    try:
        document = json.loads(json_text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"presets are not valid JSON: {exc}") from exc
    if not isinstance(document, list) or not document:
        raise ValueError("presets must be a non-empty JSON array of objects")
    presets = tuple(_parse_preset(index, item) for index, item in enumerate(document))
    names = [preset.name for preset in presets]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"preset names must be unique; repeated: {', '.join(duplicates)}")
    return presets


def _parse_preset(index: int, item: Any) -> Preset:
    where = f"preset #{index}"
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(item).__name__}")
    unknown = sorted(set(item) - set(_FIELDS))
    if unknown:
        raise ValueError(f"{where} has unknown fields {unknown}; allowed: {list(_FIELDS)}")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"{where}: name must be 1-32 characters of a-z, 0-9, '_' or '-', starting with a "
            f"letter or digit; got {name!r}"
        )
    where = f"preset {name!r}"
    width = _require_int(item, "width", where, low=1, high=MAX_PRESET_SIDE)
    height = _require_int(item, "height", where, low=1, high=MAX_PRESET_SIDE)
    quality = _require_int(item, "quality", where, low=1, high=100, default=80)
    image_format = _require_choice(item, "format", where, get_args(RenditionFormat), "webp")
    fit = _require_choice(item, "fit", where, get_args(Fit), "inside")
    crop = _require_choice(item, "crop", where, get_args(Crop), "centre")
    if crop != "centre" and fit != "cover":
        raise ValueError(f"{where}: crop {crop!r} needs fit 'cover' (an 'inside' fit never crops)")
    return Preset(
        name=name,
        width=width,
        height=height,
        format=cast(RenditionFormat, image_format),
        quality=quality,
        fit=cast(Fit, fit),
        crop=cast(Crop, crop),
    )


def _require_int(
    item: dict[str, Any], field: str, where: str, *, low: int, high: int, default: int | None = None
) -> int:
    value = item.get(field, default)
    # bool is an int in Python, but `true` is never a meaningful size.
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{where}: {field} must be an integer from {low} to {high}; got {value!r}")
    return value


def _require_choice(
    item: dict[str, Any], field: str, where: str, choices: tuple[str, ...], default: str
) -> str:
    value = item.get(field, default)
    if value not in choices:
        raise ValueError(f"{where}: {field} must be one of {list(choices)}; got {value!r}")
    return cast(str, value)
