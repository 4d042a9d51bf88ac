"""Decode an original into the one picture every rendition starts from: upright, sRGB, 8-bit RGB
or RGBA, in memory, at the scale the largest rendition needs.

libvips decodes: JPEG and WebP at reduced scale while they decode (shrink-on-load; lossless
WebP's decoder, and libjpeg's for a JPEG of several scans, still hold the whole frame), PNG
streaming in sequential access, GIF whole (its decoder holds the frame as RGBA), AVIF through
libheif. HEIC alone decodes through pillow-heif: the libheif in the libvips wheels has no HEVC
decoder, pillow-heif's does; its pixels are handed to libvips, which does the rest alike.

Every libvips step runs with fail-on-error: a truncated or corrupt original raises here, and
`decoder_errors_rejected` makes it a `corrupt_image` verdict, unless libvips ran out of memory,
which says nothing about the image. Nothing here catches and goes on, so a picture is rendered
whole or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import pillow_heif
import pyvips

from worker.validation import DECODER_ERRORS, ImageRejected, Probe, RejectionCode

log = logging.getLogger(__name__)

# How libvips and its codecs say an allocation failed (vips_tracked_malloc, vips_malloc, libwebp's
# VP8_ENC_ERROR_OUT_OF_MEMORY, glib failing to map a thread's stack, libheif's
# heif_error_Memory_allocation_error, libjpeg's JERR_OUT_OF_MEMORY), anywhere in its error text.
_OUT_OF_MEMORY_SIGNS: Final = (
    "failed to allocate",
    "out of memory",
    "memory error",
    "memory allocation error",
    "insufficient memory",
    "error creating thread",
)
# libheif files its security limits (too many items, too large an image) under
# heif_error_Memory_allocation_error as well: those are verdicts on the image.
_LIMIT_SIGN: Final = "security limit exceeded"

# Original.colour_profile: the embedded ICC profile, or libvips's built-in Display P3 profile.
EMBEDDED: Final = "embedded"
DISPLAY_P3: Final = "p3"
# nclx code points (ITU-T H.273): colour primaries 12 are P3 with D65 white (Display P3); the
# SDR transfers are BT.709's (1, 6, 14, 15) and sRGB's (13), which Display P3 uses.
_NCLX_PRIMARIES_P3_D65: Final = 12
_NCLX_SDR_TRANSFERS: Final = frozenset({1, 6, 13, 14, 15})

# EXIF Orientation values that turn the picture a quarter: the upright size swaps its sides.
_SWAPS_SIDES: Final = frozenset({5, 6, 7, 8})

# The libvips loader each quarantined format must be read with: a file that Pillow sniffs as
# one format and libvips as another is refused, not decoded by whichever parser is laxer.
LIBVIPS_LOADERS: Final[dict[str, str]] = {
    "JPEG": "jpegload_source",
    "PNG": "pngload_source",
    "WEBP": "webpload_source",
    "GIF": "gifload_source",
    "AVIF": "heifload_source",
}

# NOTE: thumbnail_source's own `fail_on` does not reach the loader in libvips 8.18 (a truncated
# JPEG decodes, its missing rows grey); the loader option string does.
_LOAD_OPTIONS: Final = "[fail_on=warning]"
# 256 colours spread over the RGB cube (their first 256 bytes as greys), for the ICC probe.
_PROBE_COLOURS: Final = bytes(
    value for index in range(256) for value in (index, (index * 7) % 256, (index * 13) % 256)
)
# WebP decodes at reduced scale down to this many times the size it is decoded for.
WEBP_LOAD_MARGIN: Final = 2.0


@contextmanager
def decoder_errors_rejected() -> Iterator[None]:
    """The one boundary where codec errors become a verdict on the image: any libvips error
    (decode, colour transform, resize, encode) is `corrupt_image`. libvips evaluates lazily, so
    a corrupt row may surface in any later step: wrap all of them. A failed allocation is
    `MemoryError`: under a render process's address-space cap, it is the memory budget running
    out, and which step meets it first varies from run to run."""
    try:
        yield
    except pyvips.Error as exc:
        text = exc.detail or exc.message
        if _out_of_memory(text):
            raise MemoryError(text.strip()) from exc
        detail = text.strip().splitlines()
        raise ImageRejected(
            RejectionCode.CORRUPT_IMAGE,
            f"the image cannot be decoded: {detail[0] if detail else exc.message}",
        ) from exc


@contextmanager
def _heif_errors_rejected(what: str) -> Iterator[None]:
    """pillow-heif's errors as `decoder_errors_rejected` has libvips's: libheif failing an
    allocation is `MemoryError`, anything else it says about the bytes `corrupt_image`."""
    try:
        yield
    except DECODER_ERRORS as exc:
        if _out_of_memory(str(exc)):
            raise MemoryError(str(exc)) from exc
        raise ImageRejected(RejectionCode.CORRUPT_IMAGE, f"{what}: {exc}") from exc


def _out_of_memory(codec_text: str) -> bool:
    text = codec_text.lower()
    return _LIMIT_SIGN not in text and any(sign in text for sign in _OUT_OF_MEMORY_SIGNS)


@dataclass(frozen=True)
class Original:
    """An original past quarantine: its upright size, and what to decode it from."""

    format: str  # Pillow's name, as quarantine sniffed it
    width: int  # upright
    height: int
    data: bytes  # the original's bytes, for libvips's loaders
    pixels: pyvips.Image | None = None  # set for HEIC: decoded already by pillow-heif
    # Where its colours are converted to sRGB from, if they need it: EMBEDDED (an ICC profile
    # that does change colours, and that lcms can use), DISPLAY_P3 (no profile, but nclx colour
    # information saying Display P3), or None. CMYK is None: thumbnail converts those itself.
    colour_profile: str | None = None


def open_original(data: bytes, probe: Probe) -> Original:
    """Read what decoding needs from the header (libvips's own reading of it, which is what
    its decode will do). HEIC is decoded here, in full: pillow-heif cannot shrink on load."""
    if probe.format == "HEIF":
        return _decode_heic(data)
    header = _open_source(data)
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
    if header.interpretation == "cmyk":
        colour_profile = None
    elif probe.format == "AVIF" and not header.get_typeof("icc-profile-data"):
        colour_profile = _nclx_colour_profile(_heif_info(data))
    else:
        colour_profile = EMBEDDED if _profile_changes_colours(header) else None
    return Original(
        format=probe.format,
        width=width,
        height=height,
        data=data,
        colour_profile=colour_profile,
    )


def decode_at(original: Original, size: tuple[int, int]) -> pyvips.Image:
    """The whole upright picture at exactly `size` (at most the original's), sRGB, 8-bit RGB or
    RGBA (an alpha that is opaque everywhere dropped), in memory. libvips's thumbnail does the
    orientation, the resize (Lanczos, alpha premultiplied) and CMYK (through the embedded
    profile, or libvips's default CMYK one); an embedded RGB or grey profile is applied after,
    on the small picture. NOTE: thumbnail's output_profile would do it at full size, 4x the
    CPU of the whole decode on a 12 MP JPEG."""
    width, height = size
    if original.format == "JPEG":
        # libjpeg's DCT scaling (1/2, 1/4, 1/8) while it decodes; thumbnail leaves at least
        # 2x for Lanczos to finish, which keeps the 1280 px rendition over 45 dB (bench/).
        scaled = pyvips.Image.thumbnail_source(
            pyvips.Source.new_from_memory(original.data),
            width,
            height=height,
            size="force",
            fail_on="error",
            option_string=_LOAD_OPTIONS,
        )
    else:
        scaled = _load(original, width).thumbnail_image(
            width, height=height, size="force", fail_on="error"
        )
    if original.colour_profile == EMBEDDED:
        scaled = scaled.icc_transform("srgb", embedded=True)
    elif original.colour_profile is not None:
        scaled = scaled.icc_transform("srgb", input_profile=original.colour_profile)
    return _opaque_alpha_dropped(_as_srgb8(scaled).copy_memory())


def _profile_changes_colours(image: pyvips.Image) -> bool:
    """Whether `image`'s embedded ICC profile moves colours by more than one level: most
    embedded profiles are sRGB itself (skip a transform) and a few cannot be used at all
    (lcms refuses them: the numbers are then taken as sRGB, as a browser does). Decided on a
    probe of colours all over the cube, never on the original's pixels."""
    if not image.get_typeof("icc-profile-data"):
        return False
    bands = 1 if image.bands < 3 else 3
    probe = pyvips.Image.new_from_memory(_PROBE_COLOURS[: 256 * bands], 16, 16, bands, "uchar")
    probe = probe.copy(interpretation="b-w" if bands == 1 else "srgb")
    probe.set_type(pyvips.GValue.blob_type, "icc-profile-data", image.get("icc-profile-data"))
    try:
        converted = probe.icc_transform("srgb", embedded=True).copy_memory()
    except pyvips.Error as exc:  # the profile, not the picture: a 16x16 probe of our own
        log.warning("ignoring an unusable ICC profile: %s", exc.message)
        return False
    if converted.bands != 3:
        return True
    reference = probe if bands == 3 else probe.colourspace("srgb")
    return bool((converted - reference).abs().max() > 1)


def _load(original: Original, width: int) -> pyvips.Image:
    """Everything but JPEG: thumbnail_source would also decode an AVIF's embedded thumbnail
    instead of its picture (which a hostile file can make another picture), and shrink WebP
    on load all the way with libwebp's box-like rescaler (36 dB against Lanczos, bench/)."""
    if original.pixels is not None:
        return original.pixels
    if original.format == "WEBP":
        # libwebp rescales while it decodes, at no extra cost; stopping at 2x the target and
        # finishing with Lanczos keeps the 1280 px rendition at 44 dB instead of 36.
        scale = min(1.0, WEBP_LOAD_MARGIN * width / original.width)
        return _open_source(original.data, scale=scale)
    return _open_source(original.data)


def _open_source(data: bytes, **options: object) -> pyvips.Image:
    """A lazy libvips image over `data`. NOTE: new_from_buffer and thumbnail_buffer copy the
    buffer (pyvips 3.2): a 255 MB PNG then costs 255 MB more; a memory source reads in place."""
    source = pyvips.Source.new_from_memory(data)
    return pyvips.Image.new_from_source(source, "", access="sequential", fail_on="error", **options)


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


def _decode_heic(data: bytes) -> Original:
    """pillow-heif decodes (HEVC), libheif applying the HEIF transforms (irot/imir) as it goes
    (pillow-heif resets the EXIF orientation: it is applied already); libvips gets the pixels
    in place, without a Pillow copy, and the ICC profile."""
    with _heif_errors_rejected("the image cannot be decoded"):
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)  # the primary image
        if heif.mode in ("RGB", "RGBA") and heif.stride == heif.size[0] * len(heif.mode):
            mode, (width, height), pixels = heif.mode, heif.size, heif.data
        else:  # grey, or rows padded: Pillow packs them (a rare copy)
            picture = heif.to_pillow()
            picture = picture.convert("RGBA" if picture.has_transparency_data else "RGB")
            mode, (width, height), pixels = picture.mode, picture.size, picture.tobytes()
        icc_profile = heif.info.get("icc_profile")
        nclx_profile = _nclx_colour_profile(heif.info)
    vips_image = pyvips.Image.new_from_memory(pixels, width, height, len(mode), "uchar")
    vips_image = vips_image.copy(interpretation="srgb")
    if icc_profile:
        vips_image.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc_profile)
    if icc_profile:
        colour_profile = EMBEDDED if _profile_changes_colours(vips_image) else None
    else:
        colour_profile = nclx_profile
    return Original(
        format="HEIF",
        width=width,
        height=height,
        data=data,
        pixels=vips_image,
        colour_profile=colour_profile,
    )


def _heif_info(data: bytes) -> dict[str, Any]:
    """The container's description of its primary image (libheif, through pillow-heif: it
    reads nclx, which libvips does not pass on); nothing is decoded."""
    with _heif_errors_rejected("the image's HEIF container cannot be read"):
        info: dict[str, Any] = pillow_heif.open_heif(data).info
    return info


def _nclx_colour_profile(info: dict[str, Any]) -> str | None:
    """DISPLAY_P3 when a HEIF or AVIF without an ICC profile says, in its nclx colour
    information (ITU-T H.273 code points), that its colours are Display P3: what iPhones and
    many AVIF encoders write. Any other nclx is taken as sRGB, as before: BT.709 primaries are
    sRGB's, and wide-gamut HDR (BT.2020 with PQ or HLG) would need tone mapping, not a profile."""
    nclx = info.get("nclx_profile") or {}
    display_p3 = (
        nclx.get("color_primaries") == _NCLX_PRIMARIES_P3_D65
        and nclx.get("transfer_characteristics") in _NCLX_SDR_TRANSFERS
    )
    return DISPLAY_P3 if display_p3 else None
