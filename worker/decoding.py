"""Decode an original into the one picture every rendition starts from: upright, sRGB, 8-bit RGB
or RGBA, in memory, at the scale the largest rendition needs.

libvips decodes: JPEG and WebP at reduced scale while they decode (shrink-on-load), PNG and GIF
streaming in sequential access, AVIF through libheif. HEIC alone decodes through pillow-heif:
the libheif in the libvips wheels has no HEVC decoder, pillow-heif's does; its pixels are handed
to libvips, which does the rest alike.

Every libvips step runs with fail-on-error: a truncated or corrupt original raises here, and
`decoder_errors_rejected` makes it a `corrupt_image` verdict. Nothing here catches and goes on,
so a picture is rendered whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

import pyvips
from PIL import Image

from worker.validation import ImageRejected, Probe, RejectionCode

# EXIF Orientation values that turn the picture a quarter: the upright size swaps its sides.
_SWAPS_SIDES: Final = frozenset({5, 6, 7, 8})

# The libvips loader each quarantined format must be read with: a file that Pillow sniffs as
# one format and libvips as another is refused, not decoded by whichever parser is laxer.
LIBVIPS_LOADERS: Final[dict[str, str]] = {
    "JPEG": "jpegload_buffer",
    "PNG": "pngload_buffer",
    "WEBP": "webpload_buffer",
    "GIF": "gifload_buffer",
    "AVIF": "heifload_buffer",
}

# NOTE: thumbnail_buffer's own `fail_on` does not reach the loader in libvips 8.18 (a truncated
# JPEG decodes, its missing rows grey); the loader option string does.
_LOAD_OPTIONS: Final = "[fail_on=warning]"
_PILLOW_ERRORS: Final = (OSError, SyntaxError, ValueError, EOFError)


@contextmanager
def decoder_errors_rejected() -> Iterator[None]:
    """The one boundary where codec errors become a verdict on the image: any libvips error
    (decode, colour transform, resize, encode) is `corrupt_image`. libvips evaluates lazily, so
    a corrupt row may surface in any later step: wrap all of them."""
    try:
        yield
    except pyvips.Error as exc:
        detail = (exc.detail or exc.message).strip().splitlines()
        raise ImageRejected(
            RejectionCode.CORRUPT_IMAGE,
            f"the image cannot be decoded: {detail[0] if detail else exc.message}",
        ) from exc


@dataclass(frozen=True)
class Original:
    """An original past quarantine: its upright size, and what to decode it from."""

    width: int
    height: int
    data: bytes  # the original's bytes, for libvips's loaders
    pixels: pyvips.Image | None = None  # set for HEIC: decoded already by pillow-heif


def open_original(data: bytes, image: Image.Image, probe: Probe) -> Original:
    """Read what decoding needs from the header (libvips's own reading of it, which is what
    its decode will do). HEIC is decoded here, in full: pillow-heif cannot shrink on load."""
    if probe.format == "HEIF":
        return _decode_heic(data, image)
    header = pyvips.Image.new_from_buffer(data, "", access="sequential", fail_on="error")
    loader = header.get("vips-loader")
    if loader != LIBVIPS_LOADERS.get(probe.format):
        raise ImageRejected(
            RejectionCode.CORRUPT_IMAGE,
            f"the bytes read as {probe.format} to one parser and as {loader} to another",
        )
    if sorted((header.width, header.height)) != sorted((probe.width, probe.height)):
        raise ImageRejected(
            RejectionCode.CORRUPT_IMAGE,
            f"the header says {probe.width}x{probe.height} to one parser and "
            f"{header.width}x{header.height} to another",
        )
    width, height = _upright_size(header)
    return Original(width=width, height=height, data=data)


def decode_at(original: Original, size: tuple[int, int]) -> pyvips.Image:
    """The whole upright picture at exactly `size` (at most the original's), sRGB, 8-bit RGB or
    RGBA (an alpha that is opaque everywhere dropped), in memory. libvips's thumbnail does the
    decode at reduced scale, the orientation, the resize (alpha premultiplied) and the colour
    transform from an embedded ICC profile (CMYK without one: libvips's default CMYK profile)."""
    width, height = size
    if original.pixels is not None:
        scaled = original.pixels.thumbnail_image(
            width, height=height, size="force", output_profile="srgb", fail_on="error"
        )
    else:
        scaled = pyvips.Image.thumbnail_buffer(
            original.data,
            width,
            height=height,
            size="force",
            output_profile="srgb",
            fail_on="error",
            option_string=_LOAD_OPTIONS,
        )
    return _opaque_alpha_dropped(_as_srgb8(scaled).copy_memory())


def _upright_size(image: pyvips.Image) -> tuple[int, int]:
    orientation = image.get("orientation") if image.get_typeof("orientation") else 1
    if orientation in _SWAPS_SIDES:
        return image.height, image.width
    return image.width, image.height


def _as_srgb8(image: pyvips.Image) -> pyvips.Image:
    """Grey, 16-bit and untagged pictures to 8-bit sRGB (thumbnail converts only what carries a
    profile). colourspace scales 16 bits to 8 rather than clipping them."""
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar")
    if image.bands > 4:  # e.g. extra channels past the alpha: keep RGBA only
        image = image.extract_band(0, n=4)
    return image


def _opaque_alpha_dropped(image: pyvips.Image) -> pyvips.Image:
    if image.bands == 4 and image.extract_band(3).min() == 255:
        return image.extract_band(0, n=3).copy_memory()  # an opaque alpha only costs bytes
    return image


def _decode_heic(data: bytes, image: Image.Image) -> Original:
    """pillow-heif decodes (HEVC), libheif applying the HEIF transforms (irot/imir) as it goes;
    libvips gets the pixels, the ICC profile and any EXIF orientation left to apply."""
    try:
        image.load()
        orientation = image.getexif().get(0x0112, 1)
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if image.has_transparency_data else "RGB")
        pixels = image.tobytes()
    except _PILLOW_ERRORS as exc:
        raise ImageRejected(
            RejectionCode.CORRUPT_IMAGE, f"the image cannot be decoded: {exc}"
        ) from exc
    bands = len(image.mode)
    vips_image = pyvips.Image.new_from_memory(pixels, image.width, image.height, bands, "uchar")
    vips_image = vips_image.copy(interpretation="srgb")
    icc_profile = image.info.get("icc_profile")
    if icc_profile:
        vips_image.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc_profile)
    if isinstance(orientation, int) and orientation in range(2, 9):
        vips_image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    width, height = _upright_size(vips_image)
    return Original(width=width, height=height, data=data, pixels=vips_image)
