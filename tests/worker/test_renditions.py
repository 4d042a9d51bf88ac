"""Renditions: sizes, fits, formats, sharing, animation, HEIC, and the process-pool contract."""

from __future__ import annotations

import io
import math
import multiprocessing
import pickle
import struct
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from tests.pictures import decode, encode, mean_difference
from tests.worker.hostile import good_images
from worker.decoding import decode_at, decoder_errors_rejected, open_original
from worker.renditions import (
    DEFAULT_PRESETS,
    WEBP_EFFORT,
    ImageRejected,
    Preset,
    RenderResult,
    render,
)
from worker.validation import Probe

IMAGES = Path(__file__).resolve().parents[2].parent / "shared/testdata/images"
GOOD = sorted(path.name for path in (IMAGES / "good").iterdir())


def photo_like(size: tuple[int, int]) -> Image.Image:
    """Gradients, shapes and noise: detail at every scale, unlike a flat test card."""
    width, height = size
    red = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size)
    image = Image.merge("RGB", (red, green, red.transpose(Image.Transpose.ROTATE_180)))
    draw = ImageDraw.Draw(image)
    for index in range(12):
        x, y = (index * 397) % width, (index * 211) % height
        draw.ellipse(
            (x, y, x + width // 5, y + height // 6), fill=(index * 20, 90, 200 - index * 9)
        )
    noise = Image.effect_noise(size, 30).convert("RGB")
    return ImageChops.add(image, noise, offset=-128)


def expected_inside(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    scale = min(1.0, box[0] / size[0], box[1] / size[1])
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


@pytest.mark.parametrize("name", GOOD)
def test_render_every_good_image_with_correct_sizes(name: str) -> None:
    data = (IMAGES / "good" / name).read_bytes()
    result = render(data)
    with Image.open(io.BytesIO(data)) as original:
        frames = getattr(original, "n_frames", 1)
        assert result.format == original.format
    assert result.frames == frames
    assert [r.name for r in result.renditions] == [p.name for p in DEFAULT_PRESETS]
    for rendition, preset in zip(result.renditions, DEFAULT_PRESETS, strict=True):
        expected = expected_inside((result.width, result.height), (preset.width, preset.height))
        assert (rendition.width, rendition.height) == expected
        with decode(rendition.data) as image:
            assert image.format == "WEBP"
            assert image.size == expected
            assert image.mode in ("RGB", "RGBA")
        assert rendition.content_type == "image/webp"


def test_render_reports_the_upright_size_of_a_rotated_original() -> None:
    stored = Image.new("RGB", (60, 40), "red")
    exif = Image.Exif()
    exif[0x0112] = 6
    result = render(encode(stored, "JPEG", exif=exif))
    assert (result.width, result.height) == (40, 60)


def test_render_never_upscales() -> None:
    result = render(encode(Image.new("RGB", (90, 30), "red"), "PNG"))
    assert {(r.width, r.height) for r in result.renditions} == {(90, 30)}


def test_render_identical_outputs_share_one_encoding() -> None:
    result = render((IMAGES / "good/flower.webp").read_bytes())  # 480x360
    by_name = {r.name: r for r in result.renditions}
    assert by_name["thumb"].shares_with is None
    assert by_name["small"].shares_with is None
    assert by_name["medium"].shares_with is None
    assert by_name["large"].shares_with == "medium"
    assert by_name["large"].data is by_name["medium"].data


def test_render_cover_fills_the_box_exactly_from_the_centre() -> None:
    original = Image.new("RGB", (300, 200), "white")
    original.paste((0, 0, 0), (0, 0, 50, 200))  # black bands that a centred square crop drops
    original.paste((0, 0, 0), (250, 0, 300, 200))
    result = render(encode(original, "PNG"), presets=[Preset("square", 100, 100, fit="cover")])
    rendition = result.renditions[0]
    assert (rendition.width, rendition.height) == (100, 100)
    with decode(rendition.data) as image:
        assert image.size == (100, 100)
        assert image.convert("L").getextrema()[0] > 200  # type: ignore[operator]


def test_render_cover_on_a_small_original_keeps_the_box_shape_without_upscaling() -> None:
    result = render(
        encode(Image.new("RGB", (100, 400), "red"), "PNG"),
        presets=[Preset("wide", 320, 160, fit="cover")],
    )
    assert (result.renditions[0].width, result.renditions[0].height) == (100, 50)


@pytest.mark.parametrize(("image_format", "pillow_format"), [("jpeg", "JPEG"), ("avif", "AVIF")])
def test_render_writes_each_output_format(image_format: str, pillow_format: str) -> None:
    preset = Preset("out", 64, 64, format=image_format, quality=70)  # type: ignore[arg-type]
    result = render(encode(photo_like((200, 100)), "PNG"), presets=[preset])
    rendition = result.renditions[0]
    assert rendition.content_type == f"image/{image_format}"
    with decode(rendition.data) as image:
        assert image.format == pillow_format
        assert image.size == (64, 32)


def test_render_reads_heic() -> None:
    original = photo_like((120, 80))
    result = render(encode(original, "HEIF", quality=90), declared_content_type="image/heic")
    assert result.format == "HEIF"
    assert (result.width, result.height) == (120, 80)
    with decode(result.renditions[0].data) as thumb:
        assert mean_difference(thumb, original.resize(thumb.size)) < 12


def test_render_reads_avif() -> None:
    result = render((IMAGES / "good/hopper.avif").read_bytes(), declared_content_type="image/avif")
    with (
        decode(result.renditions[0].data) as avif_thumb,
        Image.open(IMAGES / "good/hopper.png") as png,
    ):
        assert mean_difference(avif_thumb, png) < 8


def test_render_heic_decoder_failing_an_allocation_is_out_of_memory_not_corrupt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # libheif reports a failed allocation as an error, as it does a broken file: under a render
    # process's cap it is the budget running out (the pool's memory_limit_exceeded).
    def out_of_memory(*args: object, **kwargs: object) -> None:
        # What pillow-heif raised decoding a 24 MP HEIC with 90 MiB of address space left.
        raise RuntimeError("Memory allocation error: Unspecified: Allocating 24000015 bytes failed")

    monkeypatch.setattr(pillow_heif, "open_heif", out_of_memory)
    with pytest.raises(MemoryError):
        render(good_images()["image/heic"], declared_content_type="image/heic")


@pytest.mark.parametrize(("content_type", "image_format"), [("heic", "HEIF"), ("avif", "AVIF")])
def test_render_libheif_security_limit_is_corrupt_not_out_of_memory(
    content_type: str, image_format: str
) -> None:
    # libheif files its security limits under "Memory allocation error" too; they are about the
    # image. Quarantine refuses this one first: here libheif is asked on its own.
    data = bytearray(good_images()[f"image/{content_type}"])
    entry_count = data.index(b"iinf") + 8  # past the box type, version and flags
    data[entry_count : entry_count + 2] = struct.pack(">H", 5_000)  # over libheif's 1,000
    with pytest.raises(ImageRejected) as rejected, decoder_errors_rejected():
        open_original(bytes(data), Probe(image_format, 96, 64, 1))
    assert rejected.value.code == "corrupt_image"


@pytest.mark.parametrize(
    ("image_format", "params"),
    [
        ("GIF", {}),
        ("WEBP", {"lossless": True}),
        ("PNG", {}),  # APNG
    ],
)
def test_render_animation_gives_a_still_of_the_first_frame(
    image_format: str, params: dict[str, object]
) -> None:
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "blue", "lime")]
    data = encode(
        frames[0], image_format, save_all=True, append_images=frames[1:], duration=100, **params
    )
    result = render(data)
    assert result.frames == 3
    with decode(result.renditions[0].data) as still:
        assert getattr(still, "n_frames", 1) == 1
        assert mean_difference(still, frames[0]) < 4


def test_render_decodes_straight_to_the_largest_rendition_size() -> None:
    data = encode(photo_like((2400, 1600)), "JPEG", quality=90)
    original = open_original(data, Probe(format="JPEG", width=2400, height=1600, frames=1))
    decoded = decode_at(original, (640, 427))
    assert (decoded.width, decoded.height, decoded.bands) == (640, 427, 3)
    assert decoded.format == "uchar" and decoded.interpretation == "srgb"


def psnr(first: Image.Image, second: Image.Image) -> float:
    difference = ImageChops.difference(first.convert("RGB"), second.convert("RGB"))
    mse = sum(rms**2 for rms in ImageStat.Stat(difference).rms) / 3
    return 10 * math.log10(255**2 / mse) if mse else math.inf


def test_render_draft_and_cascade_lose_almost_nothing_against_a_full_decode() -> None:
    """Reduced-scale decode + cascade vs full decode + one Lanczos each, encoded alike.

    The pixel-level noise here is a worst case for DCT scaling (~1.4 dB at 1.9x); photos lose less.
    """
    data = encode(photo_like((2400, 1600)), "JPEG", quality=92)
    presets = [Preset("big", 640, 640, quality=90), Preset("thumb", 128, 128, quality=90)]
    result = render(data, presets=presets)
    with Image.open(io.BytesIO(data)) as full:
        full.load()
        for rendition in result.renditions:
            reference = full.resize((rendition.width, rendition.height), Image.Resampling.LANCZOS)
            same_encode = encode(reference, "WEBP", quality=90, method=WEBP_EFFORT)
            with decode(same_encode) as encoded_reference:
                reference_psnr = psnr(encoded_reference, reference)
            with decode(rendition.data) as image:
                assert psnr(image, reference) > reference_psnr - 2, rendition.name


def test_render_result_and_rejection_cross_a_process_pool() -> None:
    data = (IMAGES / "good/hopper.jpg").read_bytes()
    bad = (IMAGES / "bad/broken.png").read_bytes()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        result = pool.submit(render, data, presets=DEFAULT_PRESETS).result(timeout=60)
        rejected = pool.submit(render, bad).exception(timeout=60)
    assert isinstance(result, RenderResult)
    assert result == render(data)
    assert isinstance(rejected, ImageRejected)
    assert rejected.code == "corrupt_image"
    assert pickle.loads(pickle.dumps(result)) == result


def off_centre_subject() -> Image.Image:
    """A quiet blue-grey gradient with a busy, skin-toned subject near its left edge."""
    background = (
        Image.linear_gradient("L").rotate(90).resize((600, 300)).point(lambda v: 90 + v // 8)
    )
    image = Image.merge("RGB", (background, background, background.point(lambda v: v + 40)))
    subject = Image.effect_noise((120, 120), 60).point(lambda v: v // 2)
    skin = Image.merge(
        "RGB",
        (
            subject.point(lambda v: 170 + v),
            subject.point(lambda v: 110 + v),
            subject.point(lambda v: 80 + v),
        ),
    )
    mask = Image.new("L", (120, 120))
    ImageDraw.Draw(mask).ellipse((0, 0, 119, 119), fill=255)
    image.paste(skin, (40, 90), mask)
    return image


def subject_share(image: Image.Image) -> float:
    """How much of the picture is the subject: pixels much redder than blue."""
    red, _, blue = image.convert("RGB").split()
    redder = ImageChops.subtract(red, blue).point(lambda value: 255 if value > 60 else 0)
    return redder.histogram()[255] / (image.width * image.height)


@pytest.mark.parametrize("crop", ["attention", "entropy"])
def test_render_cover_smart_crop_keeps_an_off_centre_subject_in_frame(crop: str) -> None:
    data = encode(off_centre_subject(), "PNG")
    presets = [
        Preset("centre", 150, 150, fit="cover", quality=95),
        Preset("smart", 150, 150, fit="cover", quality=95, crop=crop),  # type: ignore[arg-type]
    ]
    centre, smart = render(data, presets=presets).renditions
    assert (smart.width, smart.height) == (150, 150)
    with decode(centre.data) as centred, decode(smart.data) as cropped:
        assert subject_share(centred) < 0.01  # guard: the centre crop loses the subject
        # The whole disc (120 px across of the 300 px high original, so 60 px here) is in frame:
        # pi * 30^2 / 150^2 is 12.6% of the square.
        assert subject_share(cropped) > 0.10


@pytest.mark.parametrize(
    ("image_format", "params"),
    [
        ("PNG", {}),
        ("PNG", {"interlace": 1}),
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("WEBP", {"lossless": True}),
        ("GIF", {}),
        ("AVIF", {}),
        ("HEIF", {}),
    ],
)
def test_render_rejects_a_truncated_original_instead_of_serving_part(
    image_format: str, params: dict[str, object]
) -> None:
    """No partial renders: an original cut short (an upload that stopped, a damaged file) is
    corrupt, never a rendition with its missing rows filled in grey or black."""
    data = encode(photo_like((600, 400)), image_format, **params)
    with pytest.raises(ImageRejected) as rejected:
        render(data[: len(data) * 2 // 3], presets=[Preset("out", 300, 300)])
    assert rejected.value.code == "corrupt_image"


@pytest.mark.parametrize("params", [{}, {"interlace": 1}])
def test_render_rejects_a_png_with_damaged_pixel_data(params: dict[str, object]) -> None:
    data = bytearray(encode(photo_like((600, 400)), "PNG", **params))
    middle = len(data) * 2 // 3
    data[middle : middle + 64] = bytes(value ^ 0x5A for value in data[middle : middle + 64])
    with pytest.raises(ImageRejected) as rejected:
        render(bytes(data), presets=[Preset("out", 300, 300)])
    assert rejected.value.code == "corrupt_image"
