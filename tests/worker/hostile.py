"""The hostile corpus: originals an attacker holding an upload ticket would send, made here in
memory (never files in shared/), each with the failure code it must get (None: it is a
legitimate image within budget, and must end `ready`)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import pillow_heif
from PIL import Image

from tests.pictures import encode

pillow_heif.register_heif_opener()

MiB = 1024 * 1024
CORRUPT = "corrupt_image"
UNSUPPORTED = "unsupported_type"
PIXELS = "pixel_limit_exceeded"
ANIMATION = "animation_limit_exceeded"
SCANS = "scan_limit_exceeded"
METADATA = "metadata_limit_exceeded"
CPU = "cpu_limit_exceeded"
MEMORY = "memory_limit_exceeded"


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    content_type: str
    code: str | None  # None: a legitimate image, must end `ready`


def photo(width: int = 96, height: int = 64) -> Image.Image:
    gradient = Image.linear_gradient("L").resize((width, height))
    return Image.merge(
        "RGB",
        (gradient, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT), gradient.rotate(90)),
    )


@cache
def good_images() -> dict[str, bytes]:
    """A small, valid original of every accepted format, by content type."""
    picture = photo()
    return {
        "image/jpeg": encode(picture, "JPEG", quality=90),
        "image/png": encode(picture, "PNG"),
        "image/gif": encode(picture.convert("P"), "GIF"),
        "image/webp": encode(picture, "WEBP", quality=80),
        "image/avif": encode(picture, "AVIF", quality=60, speed=10),
        "image/heic": encode(picture, "HEIF", quality=60),
    }


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_compressed_metadata(kind: bytes, inflated_bytes: int) -> bytes:
    """A zTXt, iTXt or iCCP chunk whose deflated content inflates to `inflated_bytes`."""
    header = {
        b"zTXt": b"comment\x00\x00",  # keyword, compression method
        b"iTXt": b"comment\x00\x01\x00\x00\x00",  # and compressed, no language, no translation
        b"iCCP": b"profile\x00\x00",
    }[kind]
    return png_chunk(kind, header + zlib.compress(b"a" * inflated_bytes, 9))


def png_blank(
    width: int, height: int, *extra: bytes, idat: bytes | None = None, interlace: int = 0
) -> bytes:
    """A 1-bit grey PNG: a huge canvas compresses to a few KB."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, interlace)
    if idat is None:
        row = b"\x00" * (1 + (width + 7) // 8)
        compressor = zlib.compressobj(9)
        idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + b"".join(extra)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def apng(width: int, height: int, frames: int) -> bytes:
    """An APNG of `frames` blank frames of width x height, each a few hundred bytes."""
    row = b"\x00" * (1 + (width + 7) // 8)
    data = zlib.compress(row * height, 9)
    chunks = [png_chunk(b"acTL", struct.pack(">II", frames, 0))]
    sequence = 0
    for index in range(frames):
        control = struct.pack(">IIIIIHHBB", sequence, width, height, 0, 0, 1, 10, 0, 0)
        chunks.append(png_chunk(b"fcTL", control))
        sequence += 1
        if index == 0:
            chunks.append(png_chunk(b"IDAT", data))
        else:
            chunks.append(png_chunk(b"fdAT", struct.pack(">I", sequence) + data))
            sequence += 1
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + b"".join(chunks) + png_chunk(b"IEND", b"")
    )


def gif_frames(frames: int, width: int = 1, height: int = 1) -> bytes:
    """A GIF of `frames` frames, written by hand (Pillow would take long to save 10,000)."""
    header = (
        b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    )
    loop = b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    frame = (
        b"!\xf9\x04\x00\x01\x00\x00\x00"  # graphic control: 10 ms
        + b","
        + struct.pack("<HHHHB", 0, 0, width, height, 0)
        + b"\x02\x02\x44\x01\x00"  # LZW min code size 2; one pixel of colour 0
    )
    return header + loop + frame * frames + b";"


def jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of each segment, a scan's entropy-coded data included."""
    position = 2
    while position < len(data):
        marker = data[position + 1]
        if marker == 0xD9:
            yield marker, position, position + 2
            return
        (length,) = struct.unpack_from(">H", data, position + 2)
        end = position + 2 + length
        if marker == 0xDA:
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
        yield marker, position, end
        position = end


def scan_bomb(repeats: int, side: int = 1024) -> bytes:
    """A progressive JPEG whose last (refinement) scan is repeated `repeats` times: tiny
    bytes, each repeat one more pass of the decoder over every block."""
    data = encode(Image.new("L", (side, side), 128), "JPEG", progressive=True, quality=90)
    segments = list(jpeg_segments(data))
    _, start, end = [segment for segment in segments if segment[0] == 0xDA][-1]
    return data[:end] + data[start:end] * repeats + data[end:]


def jpeg_with_app_segments(marker: int, payloads: list[bytes]) -> bytes:
    base = good_images()["image/jpeg"]
    segments = b"".join(
        bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
        for payload in payloads
    )
    return base[:2] + segments + base[2:]


def huge_icc_jpeg(total_bytes: int) -> bytes:
    """An ICC profile split over APP2 segments as the spec allows (up to 255 of 64 KB)."""
    chunk = 65_000
    count = total_bytes // chunk
    payloads = [
        b"ICC_PROFILE\x00" + bytes([index + 1, count]) + b"\x00" * chunk for index in range(count)
    ]
    return jpeg_with_app_segments(0xE2, payloads)


def progressive_jpeg_declaring(width: int, height: int) -> bytes:
    """A small progressive JPEG whose SOF2 header declares width x height."""
    data = encode(photo(), "JPEG", progressive=True)
    position = data.index(b"\xff\xc2")
    return data[: position + 5] + struct.pack(">HH", height, width) + data[position + 9 :]


def multiscan_baseline_jpeg(width: int, height: int) -> bytes:
    """A flat grey baseline (SOF0) JPEG whose three components are coded in three separate
    scans, as the standard allows: a few bytes per 64 pixels, but libjpeg holds every DCT
    coefficient of the picture until the last scan."""

    def segment(marker: int, body: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body

    components = 3
    frame = struct.pack(">BHHB", 8, height, width, components) + b"".join(
        bytes([index + 1, 0x11, 0]) for index in range(components)
    )
    quantisation = segment(0xDB, b"\x00" + b"\x01" * 64)
    one_code = bytes([1] + [0] * 15) + b"\x00"  # a single Huffman code, 1 bit long, for 0
    huffman = segment(0xC4, b"\x00" + one_code + b"\x10" + one_code)  # DC: 0; AC: end of block
    bits = 2 * ((width + 7) // 8) * ((height + 7) // 8)  # two 1-bit codes a block
    entropy = b"\x00" * (bits // 8) + (bytes([0xFF >> (bits % 8)]) if bits % 8 else b"")
    scans = b"".join(
        segment(0xDA, bytes([1, index + 1, 0x00, 0, 63, 0])) + entropy
        for index in range(components)
    )
    return b"\xff\xd8" + quantisation + segment(0xC0, frame) + huffman + scans + b"\xff\xd9"


def with_ispe(data: bytes, width: int, height: int) -> bytes:
    """An AVIF or HEIF whose `ispe` (image spatial extents) box declares another size."""
    position = data.index(b"ispe")
    return data[: position + 8] + struct.pack(">II", width, height) + data[position + 16 :]


def avif_with_dangling_primary_item() -> bytes:
    """A valid small AVIF whose `pitm` (primary item) names an item that does not exist:
    libavif refuses it while Pillow opens it, before any pixel."""
    data = bytearray(good_images()["image/avif"])
    position = data.index(b"pitm") + 8  # past the box type, version and flags: the item id
    data[position : position + 2] = b"\x00\x09"
    return bytes(data)


def corrupted(data: bytes) -> bytes:
    """The header intact, the second half of the stream replaced with noise-like bytes."""
    middle = len(data) // 2
    noise = bytes((index * 131 + 17) % 251 for index in range(len(data) - middle - 16))
    return data[:middle] + noise + data[-16:]


def truncations(data: bytes) -> dict[str, bytes]:
    return {
        "header": data[: min(len(data) // 8, 40)],
        "half": data[: len(data) // 2],
        "end": data[: len(data) - 20],  # into the last data chunk of every format
    }


FORMATS = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/avif", "image/heic")


def corpus() -> list[Case]:
    good = good_images()
    cases = [
        Case("zero bytes", b"", "image/png", UNSUPPORTED),
        Case(
            "polyglot: a JPEG header on a zip",
            good["image/jpeg"][:20] + b"PK\x03\x04" + b"\x00" * 26 + b"zip entry" * 50,
            "image/jpeg",
            CORRUPT,
        ),
        # The picture is whole; the HTML after IEND never reaches a rendition (re-encoded).
        Case(
            "polyglot: a PNG with trailing HTML",
            good["image/png"] + b"<html><script>alert(1)</script></html>",
            "image/png",
            None,
        ),
        Case(
            "PNG declaring 100000x100000",
            png_blank(100_000, 100_000, idat=b""),
            "image/png",
            PIXELS,
        ),
        Case("GIF of 10,000 frames", gif_frames(10_000), "image/gif", ANIMATION),
        Case("APNG of 300 frames of 2000x2000", apng(2000, 2000, 300), "image/png", ANIMATION),
        Case(
            "SVG declared image/png",
            b'<svg xmlns="http://www.w3.org/2000/svg"/>',
            "image/png",
            UNSUPPORTED,
        ),
        Case("TIFF declared image/jpeg", encode(photo(), "TIFF"), "image/jpeg", UNSUPPORTED),
        Case("BMP declared image/png", encode(photo(), "BMP"), "image/png", UNSUPPORTED),
        Case("PDF declared image/jpeg", encode(photo(), "PDF"), "image/jpeg", UNSUPPORTED),
        Case(
            "PNG with a 20 MB eXIf chunk",
            png_blank(64, 64, png_chunk(b"eXIf", b"MM\x00\x2a" + b"\x00" * (20 * MiB))),
            "image/png",
            METADATA,
        ),
        Case("JPEG with a 16 MB ICC profile", huge_icc_jpeg(16_500_000), "image/jpeg", METADATA),
        Case(
            "PNG with 2 MiB of compressed text",
            png_blank(64, 64, png_compressed_metadata(b"zTXt", 2 * MiB)),
            "image/png",
            None,
        ),
        Case(
            "PNG with an ICC profile inflating to 64 MiB",
            png_blank(64, 64, png_compressed_metadata(b"iCCP", 64 * MiB)),
            "image/png",
            METADATA,
        ),
        Case(
            "JPEG with 64 KB of garbage EXIF",
            jpeg_with_app_segments(0xE1, [b"Exif\x00\x00" + b"\xff" * 65_000]),
            "image/jpeg",
            None,
        ),
        Case(
            "JPEG with 1 MB of XMP",
            jpeg_with_app_segments(
                0xE1,
                [b"http://ns.adobe.com/xap/1.0/\x00" + b"<x/>" * 16_000 for _ in range(16)],
            ),
            "image/jpeg",
            None,
        ),
        Case("JPEG scan bomb: 5,000 refinement scans", scan_bomb(5_000), "image/jpeg", SCANS),
        # libvips streams a PNG: 100 MP cost no more memory than 1 MP; interlaced, it cannot.
        Case("PNG 10000x10000 in a few KB", png_blank(10_000, 10_000), "image/png", None),
        Case(
            "interlaced PNG declaring 10000x10000",
            png_blank(10_000, 10_000, idat=b"", interlace=1),
            "image/png",
            PIXELS,
        ),
        Case(
            "progressive JPEG declaring 10000x10000",
            progressive_jpeg_declaring(10_000, 10_000),
            "image/jpeg",
            PIXELS,
        ),
        # A legal baseline JPEG that does not stream: its components come in separate scans.
        Case(
            "baseline JPEG 2000x2000 in 3 scans",
            multiscan_baseline_jpeg(2_000, 2_000),
            "image/jpeg",
            None,
        ),
        Case(
            "baseline JPEG 10000x10000 in 3 scans",
            multiscan_baseline_jpeg(10_000, 10_000),
            "image/jpeg",
            PIXELS,
        ),
        Case(
            "AVIF declaring 10000x10000",
            with_ispe(good["image/avif"], 10_000, 10_000),
            "image/avif",
            PIXELS,
        ),
        Case(
            "HEIC declaring 10000x10000",
            with_ispe(good["image/heic"], 10_000, 10_000),
            "image/heic",
            PIXELS,
        ),
        Case(
            "AVIF whose primary item does not exist",
            avif_with_dangling_primary_item(),
            "image/avif",
            CORRUPT,
        ),
    ]
    for content_type in FORMATS:
        kind = content_type.removeprefix("image/").upper()
        for where, data in truncations(good[content_type]).items():
            cases.append(Case(f"{kind} truncated ({where})", data, content_type, CORRUPT))
        cases.append(
            Case(f"{kind} corrupt stream", corrupted(good[content_type]), content_type, CORRUPT)
        )
    return cases


@cache
def big_canvases() -> list[Case]:
    """100 MP in a few KB (or a few hundred: JPEG and GIF have no shorter way to say "flat"),
    in the formats whose encoders can make one quickly; AVIF and HEIF declare theirs (above)."""
    flat = Image.new("L", (10_000, 10_000), 200)
    return [
        Case("JPEG 10000x10000", encode(flat, "JPEG", quality=50), "image/jpeg", None),
        Case("GIF 10000x10000", encode(flat.convert("P"), "GIF"), "image/gif", None),
        Case(
            "WebP 10000x10000", encode(flat, "WEBP", lossless=True, method=0), "image/webp", PIXELS
        ),
    ]
