"""Quarantine: every rejection has its stable code, decided from headers before any decode."""

from __future__ import annotations

import pickle
import resource
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from tests.pictures import encode
from tests.worker.hostile import (
    MiB,
    avif_with_dangling_primary_item,
    multiscan_baseline_jpeg,
    png_blank,
    png_compressed_metadata,
)
from worker.renditions import ImageRejected, Limits, render
from worker.validation import (
    REJECTION_CODES,
    RejectionCode,
    open_checked,
    our_pixel_limits_only,
    pixel_limit,
)

IMAGES = Path(__file__).resolve().parents[2].parent / "shared/testdata/images"

EXPECTED_REJECTIONS = {
    "decompression_bomb.gif": RejectionCode.PIXEL_LIMIT_EXCEEDED,
    "truncated_jpeg.jpg": RejectionCode.CORRUPT_IMAGE,
    "broken.png": RejectionCode.CORRUPT_IMAGE,
}


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries a few bytes of pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def animated_gif(frames: int, size: tuple[int, int] = (20, 10)) -> bytes:
    images = [Image.new("P", size, index % 2) for index in range(frames)]
    for image in images:
        image.putpalette([255, 0, 0, 0, 0, 255])
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=50)


def rejection_of(data: bytes, **kwargs: object) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        render(data, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_validation_covers_every_bad_test_image() -> None:
    assert {path.name for path in (IMAGES / "bad").iterdir()} == set(EXPECTED_REJECTIONS)


@pytest.mark.parametrize(("name", "code"), sorted(EXPECTED_REJECTIONS.items()))
def test_validation_rejects_bad_image_with_its_code(name: str, code: RejectionCode) -> None:
    rejected = rejection_of((IMAGES / "bad" / name).read_bytes())
    assert rejected.code == code
    assert rejected.message


def test_validation_decompression_bomb_message_names_size_and_limit() -> None:
    data = (IMAGES / "bad/decompression_bomb.gif").read_bytes()
    rejected = rejection_of(data)
    limit = pixel_limit("GIF", limits=Limits(), data_bytes=len(data))
    assert "65535x66601" in rejected.message
    assert f"over the limit of {limit:,} for GIF" in rejected.message


def test_validation_refuses_huge_declared_canvas_quickly_without_allocating() -> None:
    data = png_header_only(50_000, 50_000)  # 2.5 Gpx: 10 GB if it were ever allocated
    rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    rejected = rejection_of(data)
    elapsed = time.perf_counter() - started
    rss_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before_kib) / 1024
    assert rejected.code == RejectionCode.PIXEL_LIMIT_EXCEEDED
    assert "50000x50000" in rejected.message
    assert elapsed < 0.5
    assert rss_growth_mib < 20


def test_validation_our_limit_decides_not_pillows_bomb_check() -> None:
    # 144 Mpx is over Pillow's default warning threshold (~89 Mpx) and under its error one.
    header = png_header_only(12_000, 12_000)
    rejected = rejection_of(header, limits=Limits(max_pixels=100_000_000))
    assert rejected.code == RejectionCode.PIXEL_LIMIT_EXCEEDED
    assert "over the limit of 100,000,000" in rejected.message
    # With a higher limit of ours, Pillow's check must neither warn (an error here) nor refuse.
    with our_pixel_limits_only():
        image, probe = open_checked(
            header, declared_content_type="image/png", limits=Limits(max_pixels=200_000_000)
        )
        image.close()
    assert (probe.width, probe.height) == (12_000, 12_000)


def test_validation_restores_pillows_bomb_check_afterwards() -> None:
    saved = Image.MAX_IMAGE_PIXELS
    rejection_of(png_header_only(50_000, 50_000))
    assert saved == Image.MAX_IMAGE_PIXELS


def test_validation_prices_a_baseline_jpeg_of_several_scans_as_whole_frame() -> None:
    # 100 MP, under the pixel limit of a JPEG that streams (about 800 MP at the default cap);
    # in separate scans, libjpeg holds all of its coefficients: 600 MB.
    data = multiscan_baseline_jpeg(10_000, 10_000)
    with pytest.raises(ImageRejected) as rejected, our_pixel_limits_only():
        open_checked(data, declared_content_type="image/jpeg", limits=Limits())
    assert rejected.value.code == RejectionCode.PIXEL_LIMIT_EXCEEDED
    assert "for a whole-frame JPEG" in rejected.value.message


@pytest.mark.parametrize("kind", [b"zTXt", b"iTXt", b"iCCP"])
def test_validation_accepts_png_metadata_that_inflates_within_the_metadata_limit(
    kind: bytes,
) -> None:
    # Past Pillow's own cap of 1 MiB a chunk, within ours (8 MiB).
    data = png_blank(64, 64, png_compressed_metadata(kind, 2 * MiB))
    assert render(data, declared_content_type="image/png").width == 64


@pytest.mark.parametrize(
    "chunks",
    [
        [png_compressed_metadata(b"zTXt", 9 * MiB)],
        [png_compressed_metadata(b"iTXt", 9 * MiB)],
        [png_compressed_metadata(b"iCCP", 9 * MiB)],
        [png_compressed_metadata(b"zTXt", 2 * MiB)] * 5,  # each within it, not all together
    ],
    ids=["zTXt", "iTXt", "iCCP", "5 zTXt"],
)
def test_validation_rejects_png_metadata_that_inflates_past_the_metadata_limit(
    chunks: list[bytes],
) -> None:
    saved = PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY
    rejected = rejection_of(png_blank(64, 64, *chunks), declared_content_type="image/png")
    assert rejected.code == RejectionCode.METADATA_LIMIT_EXCEEDED
    assert f"the limit of {8 * MiB:,} bytes" in rejected.message
    assert saved == (PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY)


def test_validation_rejects_declared_type_that_differs_from_bytes() -> None:
    data = (IMAGES / "good/hopper.jpg").read_bytes()
    rejected = rejection_of(data, declared_content_type="image/png")
    assert rejected.code == RejectionCode.TYPE_MISMATCH
    assert "image/png" in rejected.message and "JPEG" in rejected.message


def test_validation_accepts_matching_declared_type_with_parameters() -> None:
    data = (IMAGES / "good/hopper.jpg").read_bytes()
    assert render(data, declared_content_type="Image/JPEG; q=1").format == "JPEG"


def test_validation_rejects_declared_type_outside_accepted_list() -> None:
    data = (IMAGES / "good/hopper.jpg").read_bytes()
    rejected = rejection_of(data, declared_content_type="image/svg+xml")
    assert rejected.code == RejectionCode.UNSUPPORTED_TYPE


@pytest.mark.parametrize("image_format", ["BMP", "TIFF", "ICO"])
def test_validation_rejects_readable_format_we_do_not_accept(image_format: str) -> None:
    data = encode(Image.new("RGB", (16, 16), "red"), image_format)
    rejected = rejection_of(data)
    assert rejected.code == RejectionCode.UNSUPPORTED_TYPE
    assert image_format in rejected.message


def test_validation_rejects_bytes_that_are_no_image_as_unsupported() -> None:
    assert rejection_of(b"%PDF-1.7 not an image").code == RejectionCode.UNSUPPORTED_TYPE
    assert rejection_of(b"").code == RejectionCode.UNSUPPORTED_TYPE


def test_validation_rejects_an_avif_container_its_decoder_refuses_as_corrupt() -> None:
    # libavif refuses it while Pillow opens it, with a RuntimeError rather than Pillow's own
    # errors: a verdict all the same, never an error the worker would retry.
    rejected = rejection_of(avif_with_dangling_primary_item(), declared_content_type="image/avif")
    assert rejected.code == RejectionCode.CORRUPT_IMAGE
    assert "Missing or empty image item" in rejected.message


def test_validation_rejects_animation_over_frame_limit() -> None:
    rejected = rejection_of(animated_gif(6), limits=Limits(max_frames=5))
    assert rejected.code == RejectionCode.ANIMATION_LIMIT_EXCEEDED
    assert "6 frames" in rejected.message


def test_validation_rejects_animation_over_total_pixel_limit() -> None:
    # 6 frames of 20x10 = 1,200 pixels.
    rejected = rejection_of(animated_gif(6), limits=Limits(max_animation_pixels=1_000))
    assert rejected.code == RejectionCode.ANIMATION_LIMIT_EXCEEDED
    assert "1,200 pixels" in rejected.message


def test_validation_accepts_animation_within_limits() -> None:
    result = render(animated_gif(6), limits=Limits(max_frames=6, max_animation_pixels=1_200))
    assert result.frames == 6


def test_validation_every_code_has_a_description() -> None:
    assert set(REJECTION_CODES) == set(RejectionCode)
    assert all(description for description in REJECTION_CODES.values())


def test_image_rejected_survives_pickling_for_the_process_pool() -> None:
    original = ImageRejected(RejectionCode.CORRUPT_IMAGE, "cut off")
    copy = pickle.loads(pickle.dumps(original))
    assert (copy.code, copy.message, str(copy)) == ("corrupt_image", "cut off", "cut off")
