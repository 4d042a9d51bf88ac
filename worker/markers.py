"""Walk an original's container structure (JPEG markers, PNG and WebP chunks) without decoding
anything, for what its header fields do not say but its decode will cost: how many scans a JPEG
makes the decoder run, how many frames an APNG or WebP really holds, and how many bytes of
metadata (EXIF, ICC, XMP, text) the decoder will parse and hold.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Structure:
    scans: int = 0  # JPEG: start-of-scan markers in the first picture
    frames: int = 0  # APNG and WebP: frame chunks (fcTL, ANMF); 0 for a still or other formats
    metadata_bytes: int = 0  # EXIF, ICC, XMP, comments and text, as stored
    # The decoder must hold the whole frame before the first row comes out: a JPEG of more
    # than one scan (all its DCT coefficients: progressive, or a baseline one whose components
    # come in separate scans) or an interlaced PNG; others stream, or shrink on load.
    whole_frame: bool = False


# After an SOS header comes entropy-coded data, in which 0xFF is followed by 0x00 (a stuffed
# byte), a restart marker (D0-D7) or another 0xFF (fill): any other byte ends the scan's data.
_NEXT_MARKER: Final = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_JPEG_METADATA: Final = frozenset({0xFE, *range(0xE1, 0xF0)})  # COM, APP1-APP15 (not JFIF's)
_PROGRESSIVE_FRAMES: Final = frozenset({0xC2, 0xC6, 0xCA, 0xCE})  # SOF2, 6, 10, 14
_PNG_METADATA: Final = frozenset({b"iCCP", b"tEXt", b"zTXt", b"iTXt", b"eXIf"})
_WEBP_METADATA: Final = frozenset({b"ICCP", b"EXIF", b"XMP "})


def read_structure(data: bytes) -> Structure:
    """What the container says; whatever cannot be walked is left to the decoder to refuse."""
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    return Structure()


def _jpeg(data: bytes) -> Structure:
    scans = metadata = 0
    progressive = False
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            break  # not a marker where one must be: corrupt, for the decoder to say
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker == 0xD9:  # EOI: the end of the first picture (an MPO's others are not decoded)
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            position += 2
            continue
        (length,) = struct.unpack_from(">H", data, position + 2)
        if marker in _JPEG_METADATA:
            metadata += length
        elif marker in _PROGRESSIVE_FRAMES:
            progressive = True
        position += 2 + length
        if marker == 0xDA:
            scans += 1
            found = _NEXT_MARKER.search(data, position)
            if found is None:
                break
            position = found.start()
    # libjpeg buffers the whole picture's coefficients for any JPEG of several scans
    # (`has_multiple_scans`), whatever the scale it decodes to.
    whole_frame = progressive or scans > 1
    return Structure(scans=scans, metadata_bytes=metadata, whole_frame=whole_frame)


def _png(data: bytes) -> Structure:
    frames = metadata = 0
    interlaced = len(data) > 28 and data[28] != 0  # IHDR's interlace method (Adam7)
    position = 8
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        if kind == b"fcTL":
            frames += 1
        elif kind in _PNG_METADATA:
            metadata += length
        elif kind == b"IEND":
            break
        position += 12 + length
    return Structure(frames=frames, metadata_bytes=metadata, whole_frame=interlaced)


def _webp(data: bytes) -> Structure:
    frames = metadata = 0
    position = 12
    while position + 8 <= len(data):
        kind, length = struct.unpack_from("<4sI", data, position)
        if kind == b"ANMF":
            frames += 1
        elif kind in _WEBP_METADATA:
            metadata += length
        position += 8 + length + (length & 1)  # chunks are padded to an even size
    return Structure(frames=frames, metadata_bytes=metadata)
