"""Quarantine: decide from an original's header alone whether we will decode it at all.

Everything here reads headers only; no pixel data is decoded before the limits have passed, so
a 44-byte file declaring a 50000x50000 canvas is refused without allocating its canvas.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

import pillow_heif
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from service.content_types import ACCEPTED_CONTENT_TYPES
from worker.costs import DEFAULT_RENDER_MEMORY_BYTES, max_pixels_for
from worker.markers import Structure, read_structure

# NOTE: registering a plugin is not I/O; doing it at import means a process-pool child that
# unpickles `render` can read HEIC before its first job.
pillow_heif.register_heif_opener()


class RejectionCode(StrEnum):
    UNSUPPORTED_TYPE = "unsupported_type"
    TYPE_MISMATCH = "type_mismatch"
    PIXEL_LIMIT_EXCEEDED = "pixel_limit_exceeded"
    ANIMATION_LIMIT_EXCEEDED = "animation_limit_exceeded"
    SCAN_LIMIT_EXCEEDED = "scan_limit_exceeded"
    METADATA_LIMIT_EXCEEDED = "metadata_limit_exceeded"
    CORRUPT_IMAGE = "corrupt_image"


# The stable codes an image can fail with, for docs and API clients to cite.
REJECTION_CODES: Final[Mapping[RejectionCode, str]] = MappingProxyType(
    {
        RejectionCode.UNSUPPORTED_TYPE: "the bytes or the declared type are not a format we take",
        RejectionCode.TYPE_MISMATCH: "the bytes are an accepted format, but not the declared one",
        RejectionCode.PIXEL_LIMIT_EXCEEDED: "width x height is more than the renderer's memory "
        "allows for this format, or over the pixel limit",
        RejectionCode.ANIMATION_LIMIT_EXCEEDED: "too many frames, or too many pixels in all frames",
        RejectionCode.SCAN_LIMIT_EXCEEDED: "a JPEG with more scans than any encoder makes "
        "(each scan is another pass of the decoder)",
        RejectionCode.METADATA_LIMIT_EXCEEDED: "more EXIF, ICC, XMP or text metadata than the "
        "limit",
        RejectionCode.CORRUPT_IMAGE: "an accepted format, but truncated or corrupt",
    }
)

# Pillow format names we decode, AVIF before HEIF: both are ISO-BMFF and Pillow tries in order.
ACCEPTED_FORMATS: Final[tuple[str, ...]] = tuple(
    sorted(set(ACCEPTED_CONTENT_TYPES.values()), key=lambda name: (name == "HEIF", name))
)

# Leading bytes of the accepted formats: unreadable data that starts like one of them is
# reported as corrupt; anything else as not an accepted format.
_ACCEPTED_MAGIC: Final[tuple[bytes, ...]] = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8")

# What Pillow and its codec plugins raise for bytes they cannot read: Pillow's own errors, and
# RuntimeError, with which the AVIF plugin (libavif) and pillow-heif (libheif) report a broken
# container. Caught only around their reading of an original: elsewhere these are bugs.
DECODER_ERRORS: Final = (OSError, SyntaxError, ValueError, EOFError, RuntimeError)

# Pillow's PNG reader names the cap in its error when compressed metadata inflates past it.
_PNG_METADATA_CAPS: Final = ("MAX_TEXT_CHUNK", "MAX_TEXT_MEMORY")

# Multi-picture JPEGs (phones and 3D cameras) open as MPO: the first picture is a plain JPEG.
_FORMAT_ALIASES: Final[Mapping[str, str]] = MappingProxyType({"MPO": "JPEG"})


class ImageRejected(Exception):
    """A permanent failure: the original is not an image we will serve. `code` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[ImageRejected], tuple[str, str]]:
        # Exceptions pickle as cls(*args); ours needs both fields to cross the process pool.
        return (type(self), (self.code, self.message))


@dataclass(frozen=True)
class Limits:
    # One frame, whatever the memory: None leaves the limit to `memory_bytes` alone.
    max_pixels: int | None = None
    # The render process's memory cap: an original whose decode would need more (at its
    # format's cost per pixel, `worker.costs`) is refused. None: no such limit.
    memory_bytes: int | None = DEFAULT_RENDER_MEMORY_BYTES
    # libjpeg-turbo refuses more than `max_scans` when asked (its fuzzers use 500); encoders
    # make 10 or so for a progressive JPEG, and every scan is a pass over the coefficients.
    max_jpeg_scans: int = 100
    max_metadata_bytes: int = 8 * 1024 * 1024  # ICC profiles of print workflows reach a few MB
    # Animations are served as uploaded too, so their whole-animation cost is capped: 1 Gpx is
    # e.g. 500 frames of 1920x1080, about 4 GB for a browser that decodes them all.
    max_frames: int = 1_000
    max_animation_pixels: int = 1_000_000_000


@dataclass(frozen=True)
class Probe:
    """What the header says about an original that passed quarantine."""

    format: str  # Pillow's name, e.g. "JPEG"
    width: int  # as stored, before EXIF orientation
    height: int
    frames: int


@contextmanager
def our_pixel_limits_only() -> Iterator[None]:
    """Switch off Pillow's DecompressionBomb check (a warning, or an error at 2x) while we work.

    `check_header` enforces `Limits` first, with our codes and messages; Pillow's own check
    would otherwise decide first, and its warning is an error under pytest. Meant for the
    single-threaded worker processes: the setting is process-wide.
    """
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


@contextmanager
def _png_metadata_inflated_up_to(max_bytes: int) -> Iterator[None]:
    """Have Pillow inflate a PNG's compressed text and ICC profile (what comes before IDAT, as
    it opens) up to our metadata limit: its own caps (1 MiB a chunk, 64 MiB of text in all)
    would call a legitimate file within ours corrupt. Process-wide, as `our_pixel_limits_only`.
    """
    saved = PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY
    PngImagePlugin.MAX_TEXT_CHUNK = PngImagePlugin.MAX_TEXT_MEMORY = max_bytes
    try:
        yield
    finally:
        PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY = saved


def open_checked(
    data: bytes, *, declared_content_type: str | None, limits: Limits
) -> tuple[Image.Image, Probe]:
    """Open (headers only) and run every check; the caller closes the image.

    Call inside `our_pixel_limits_only()`.
    """
    structure = read_structure(data)
    check_structure(structure, limits)
    image = _open_accepted(data, max_metadata_bytes=limits.max_metadata_bytes)
    try:
        probe = check_header(
            image,
            declared_content_type=declared_content_type,
            limits=limits,
            data_bytes=len(data),
            structure=structure,
        )
    except BaseException:
        image.close()
        raise
    return image, probe


def check_structure(structure: Structure, limits: Limits) -> None:
    if structure.scans > limits.max_jpeg_scans:
        raise ImageRejected(
            RejectionCode.SCAN_LIMIT_EXCEEDED,
            f"{structure.scans:,} JPEG scans, over the limit of {limits.max_jpeg_scans:,}",
        )
    if structure.metadata_bytes > limits.max_metadata_bytes:
        raise ImageRejected(
            RejectionCode.METADATA_LIMIT_EXCEEDED,
            f"{structure.metadata_bytes:,} bytes of metadata, over the limit of "
            f"{limits.max_metadata_bytes:,}",
        )


def pixel_limit(
    format_name: str, *, limits: Limits, data_bytes: int, whole_frame: bool = False
) -> int | None:
    """The most pixels one frame of this format may have, or None for no limit."""
    candidates = [limits.max_pixels] if limits.max_pixels is not None else []
    if limits.memory_bytes is not None:
        memory_bytes = limits.memory_bytes
        candidates.append(
            max_pixels_for(
                format_name,
                memory_bytes=memory_bytes,
                data_bytes=data_bytes,
                whole_frame=whole_frame,
            )
        )
    return min(candidates, default=None)


def check_header(
    image: Image.Image,
    *,
    declared_content_type: str | None,
    limits: Limits,
    data_bytes: int = 0,
    structure: Structure | None = None,
) -> Probe:
    sniffed = _FORMAT_ALIASES.get(image.format or "", image.format or "unknown")
    if sniffed not in ACCEPTED_FORMATS:
        raise ImageRejected(RejectionCode.UNSUPPORTED_TYPE, f"{sniffed} is not an accepted format")
    if declared_content_type is not None:
        _check_declared(declared_content_type, sniffed)
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejected(RejectionCode.CORRUPT_IMAGE, f"the header declares {width}x{height}")
    structure = structure or Structure()
    max_pixels = pixel_limit(
        sniffed, limits=limits, data_bytes=data_bytes, whole_frame=structure.whole_frame
    )
    if max_pixels is not None and width * height > max_pixels:
        raise ImageRejected(
            RejectionCode.PIXEL_LIMIT_EXCEEDED,
            f"{width}x{height} is {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} for {'a whole-frame ' if structure.whole_frame else ''}{sniffed}",
        )
    # A header's frame count may understate the frame chunks that follow it.
    frames = max(_count_frames(image), structure.frames)
    if frames > limits.max_frames:
        raise ImageRejected(
            RejectionCode.ANIMATION_LIMIT_EXCEEDED,
            f"{frames:,} frames, over the limit of {limits.max_frames:,}",
        )
    if frames * width * height > limits.max_animation_pixels:
        raise ImageRejected(
            RejectionCode.ANIMATION_LIMIT_EXCEEDED,
            f"{frames:,} frames of {width}x{height} are {frames * width * height:,} pixels, "
            f"over the limit of {limits.max_animation_pixels:,}",
        )
    return Probe(format=sniffed, width=width, height=height, frames=frames)


def _open_accepted(data: bytes, *, max_metadata_bytes: int) -> Image.Image:
    try:
        with _png_metadata_inflated_up_to(max_metadata_bytes):
            return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        pass
    except DECODER_ERRORS as exc:
        if any(cap in str(exc) for cap in _PNG_METADATA_CAPS):
            raise ImageRejected(
                RejectionCode.METADATA_LIMIT_EXCEEDED,
                "the PNG's compressed text or ICC profile inflates past the limit of "
                f"{max_metadata_bytes:,} bytes of metadata",
            ) from exc
        raise ImageRejected(
            RejectionCode.CORRUPT_IMAGE, f"the header cannot be read: {exc}"
        ) from exc
    other_format = _identify_any_format(data)
    if other_format is not None:
        raise ImageRejected(
            RejectionCode.UNSUPPORTED_TYPE, f"{other_format} is not an accepted format"
        )
    if _starts_like_accepted_format(data):
        raise ImageRejected(
            RejectionCode.CORRUPT_IMAGE, "the data starts like an accepted format but is corrupt"
        )
    raise ImageRejected(RejectionCode.UNSUPPORTED_TYPE, "the data is not a recognised image format")


def _identify_any_format(data: bytes) -> str | None:
    """Name a format we do not accept (BMP, TIFF, ...), reading its header only, for the message."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format
    except Exception:  # any failure just means "not identified"; the caller decides the code
        return None


def _starts_like_accepted_format(data: bytes) -> bool:
    is_webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    is_iso_bmff = data[4:8] == b"ftyp"  # the AVIF and HEIF container
    return is_webp or is_iso_bmff or data.startswith(_ACCEPTED_MAGIC)


def _check_declared(declared_content_type: str, sniffed: str) -> None:
    media_type = declared_content_type.split(";", 1)[0].strip().lower()
    expected = ACCEPTED_CONTENT_TYPES.get(media_type)
    if expected is None:
        raise ImageRejected(
            RejectionCode.UNSUPPORTED_TYPE, f"the declared type {media_type!r} is not accepted"
        )
    if expected != sniffed:
        raise ImageRejected(
            RejectionCode.TYPE_MISMATCH,
            f"declared {media_type!r} but the bytes are {sniffed}",
        )


def _count_frames(image: Image.Image) -> int:
    # GIF counts by skipping over frames (no decoding); WebP, APNG, AVIF read a header count.
    try:
        return int(getattr(image, "n_frames", 1))
    except DECODER_ERRORS as exc:
        raise ImageRejected(
            RejectionCode.CORRUPT_IMAGE, f"the frames cannot be read: {exc}"
        ) from exc
