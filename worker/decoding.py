"""Decode an opened original into the one clean image every rendition starts from: upright,
sRGB, RGB or RGBA, with no metadata left to leak into an encoder."""

from __future__ import annotations

import io
import logging
import math
from typing import Final

from PIL import Image, ImageChops, ImageCms

log = logging.getLogger(__name__)

EXIF_ORIENTATION_TAG: Final = 0x0112

# EXIF Orientation -> the transposition that makes the stored pixels upright (1 = already so).
_UPRIGHT_BY_ORIENTATION: Final[dict[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES: Final = frozenset({5, 6, 7, 8})

# How much larger than the largest rendition a JPEG is decoded (libjpeg's DCT scaling picks
# 1/2, 1/4 or 1/8 at or above the request). Measured on synthetic photos against a full decode
# + Lanczos, PSNR of the 1280 px rendition: 12 MP drafted to 2000 px: 39.4 dB (1.56x);
# 24 MP drafted to 3000 px: 44.6 dB (2.3x), but to 1500 px: 36.4 dB (1.17x). At 1.5 the
# 12 MP decode takes 69 ms instead of 107 ms, and its resize 50 ms instead of 142 ms.
DRAFT_SAFETY_FACTOR: Final = 1.5

_SRGB: Final = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_CMS_MODES: Final = frozenset({"RGB", "RGBA", "CMYK", "L"})
# Colours all over the RGB cube: a profile whose transform leaves them all within 1 level is
# sRGB in effect, whatever its name says (names lie: a profile is its matrix and curves).
_PROBE: Final = Image.merge(
    "RGB",
    (
        Image.linear_gradient("L"),
        Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90),
        Image.radial_gradient("L"),
    ),
).resize((16, 16), Image.Resampling.NEAREST)


def read_orientation(image: Image.Image) -> int:
    """The EXIF Orientation (1-8), 1 when absent or unreadable: hostile EXIF never rejects."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except Exception:  # EXIF parsers raise many types on garbage; upright-as-stored is safe
        return 1
    return value if isinstance(value, int) and value in range(1, 9) else 1


def upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    width, height = size
    return (height, width) if orientation in _SWAPS_SIDES else (width, height)


def decode_upright_srgb(image: Image.Image, *, orientation: int, min_scale: float) -> Image.Image:
    """Decode the first frame, at reduced scale for JPEG when no rendition needs more than
    `min_scale` of the original's size, and return it upright, sRGB, metadata-free. `image` is
    consumed: it may come back as the result, its metadata emptied."""
    if image.format in ("JPEG", "MPO") and min_scale < 1:
        width, height = image.size
        factor = min(1.0, min_scale * DRAFT_SAFETY_FACTOR)
        image.draft(None, (math.ceil(width * factor), math.ceil(height * factor)))
    image.load()
    icc_profile = image.info.get("icc_profile")
    transpose = _UPRIGHT_BY_ORIENTATION.get(orientation)
    decoded: Image.Image = image.transpose(transpose) if transpose is not None else image
    decoded = _to_srgb(decoded, icc_profile) if icc_profile else _to_rgb_or_rgba(decoded)
    if decoded.mode == "RGBA" and decoded.getchannel("A").getextrema() == (255, 255):
        decoded = decoded.convert("RGB")  # fully opaque alpha only costs bytes
    # convert/resize/transpose copy `info`, and the AVIF encoder falls back to it for the ICC
    # profile. Emptying it here (on our own copy, or on the caller's throwaway original) is what
    # keeps every rendition metadata-free.
    decoded.info = {}
    return decoded


def _to_rgb_or_rgba(image: Image.Image) -> Image.Image:
    if image.mode in ("RGB", "RGBA"):
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: convert("L") clips everything over 255 to white; scale instead.
        return image.convert("I").point(lambda value: value * (1 / 257)).convert("RGB")
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def _leaves_colours_unchanged(transform: ImageCms.ImageCmsTransform, mode: str) -> bool:
    probe = _PROBE.convert(mode)
    probed = ImageCms.applyTransform(probe, transform)
    assert probed is not None  # applyTransform returns None only when inPlace=True
    over_one_level = ImageChops.difference(probed, probe).point(lambda v: 255 if v > 1 else 0)
    return over_one_level.getbbox(alpha_only=False) is None


def _to_srgb(image: Image.Image, icc_profile: bytes) -> Image.Image:
    """Convert from the embedded profile to sRGB; a broken profile falls back to the numbers."""
    if image.mode not in _CMS_MODES:
        image = _to_rgb_or_rgba(image)
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        transform = ImageCms.buildTransform(source, _SRGB, image.mode, out_mode)
        if image.mode in ("RGB", "RGBA") and _leaves_colours_unchanged(transform, image.mode):
            return image  # an sRGB profile (the common case): skip a ~15 ms/MP transform
        converted = ImageCms.applyTransform(image, transform)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        log.warning("ignoring an unusable ICC profile: %s", exc)
        return _to_rgb_or_rgba(image)
    assert converted is not None  # applyTransform returns None only when inPlace=True
    return converted
