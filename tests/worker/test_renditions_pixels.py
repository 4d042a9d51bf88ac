"""What a viewer sees: upright, sRGB, no metadata left, transparency or a defined background."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image, ImageCms, ImageOps

from tests.pictures import decode, encode, mean_difference
from worker.renditions import JPEG_BACKGROUND, Preset, render

IMAGES = Path(__file__).resolve().parents[2].parent / "shared/testdata/images"
GOOD = sorted(path.name for path in (IMAGES / "good").iterdir())
ORIENTATION = 0x0112
GPS_IFD = 0x8825
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
EVERY_FORMAT = [
    Preset("webp", 96, 96, format="webp", quality=90),
    Preset("jpeg", 96, 96, format="jpeg", quality=90),
    Preset("avif", 96, 96, format="avif", quality=90),
]

# How a viewer stores an upright picture for each EXIF Orientation, from the tag's definition
# (where row 0 and column 0 of the stored pixels belong): e.g. 6 is "row 0 is the right side",
# so the stored pixels are the upright ones turned 90 degrees counter-clockwise.
STORED_FROM_UPRIGHT: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def marker_image() -> Image.Image:
    """Landscape, with a different colour in each quadrant: every flip and turn shows."""
    image = Image.new("RGB", (64, 48), (255, 255, 0))
    image.paste((255, 0, 0), (0, 0, 32, 24))
    image.paste((0, 0, 255), (32, 0, 64, 24))
    image.paste((0, 160, 0), (0, 24, 32, 48))
    return image


def profile_with_red_and_green_swapped() -> bytes:
    """sRGB's own profile with the rXYZ and gXYZ tags swapped: its red is sRGB's green."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[84:100] = bytes(16)  # the profile ID (an MD5) no longer matches; zero means unset
    count = int.from_bytes(data[128:132], "big")
    entries = {bytes(data[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, green = entries[b"rXYZ"], entries[b"gXYZ"]
    red_pointer, green_pointer = data[red + 4 : red + 12], data[green + 4 : green + 12]
    data[red + 4 : red + 12], data[green + 4 : green + 12] = green_pointer, red_pointer
    return bytes(data)


def assert_no_metadata(data: bytes) -> None:
    with decode(data) as image:
        assert not image.getexif(), "EXIF"
        assert not image.getexif().get_ifd(GPS_IFD), "GPS"
        assert not {"exif", "xmp", "XML:com.adobe.xmp", "icc_profile"} & set(image.info)
    for marker in (b"Exif\x00\x00", b"<x:xmpmeta", b"http://ns.adobe.com/xap", b"ICC_PROFILE"):
        assert marker not in data


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "AVIF"])
def test_render_every_exif_orientation_comes_out_upright(
    orientation: int, image_format: str
) -> None:
    upright = marker_image()
    transpose = STORED_FROM_UPRIGHT[orientation]
    stored = upright.transpose(transpose) if transpose is not None else upright
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    data = encode(stored, image_format, exif=exif, quality=95)
    with Image.open(io.BytesIO(data)) as check:  # the fixture agrees with Pillow's reading
        assert mean_difference(ImageOps.exif_transpose(check), upright) < 4

    result = render(data, presets=[Preset("out", 128, 128, quality=95)])
    assert (result.width, result.height) == upright.size
    with decode(result.renditions[0].data) as rendition:
        assert rendition.size == upright.size
        assert mean_difference(rendition, upright) < 6


@pytest.mark.parametrize("name", ["hopper_orientation_3.jpg", "hopper_orientation_6.jpg"])
def test_render_tagged_hopper_looks_like_hopper(name: str) -> None:
    rendered = render((IMAGES / "good" / name).read_bytes()).renditions[0]
    reference = render((IMAGES / "good/hopper.jpg").read_bytes()).renditions[0]
    with decode(rendered.data) as tagged, decode(reference.data) as plain:
        assert mean_difference(tagged, plain) < 10
        # Guard: the stored pixels really are turned, so the check above can fail.
        with Image.open(IMAGES / "good" / name) as stored:
            assert mean_difference(stored.resize(plain.size), plain) > 30


def test_render_hopper_orientation_8_webp_looks_like_hopper() -> None:
    rendered = render((IMAGES / "good/hopper_orientation_8.webp").read_bytes()).renditions[0]
    with decode(rendered.data) as tagged, Image.open(IMAGES / "good/hopper.png") as plain:
        assert mean_difference(tagged, plain) < 10


def test_render_converts_cmyk_to_srgb_through_a_cmyk_profile() -> None:
    """A CMYK original without a profile goes through libvips's default CMYK profile, as a
    colour-managed viewer shows it: its 4-colour black is a dark grey, not the pure black of
    subtracting inks from white, and its reds stay red."""
    data = (IMAGES / "good/pil_sample_cmyk.jpg").read_bytes()
    result = render(data, presets=[Preset("out", 128, 128, quality=95)])
    with (
        decode(result.renditions[0].data) as rendition,
        Image.open(io.BytesIO(data)) as cmyk,
    ):
        assert cmyk.mode == "CMYK"
        assert rendition.mode == "RGB"
        assert rendition.size == cmyk.size
        background, red = rendition.getpixel((50, 50)), rendition.getpixel((2, 1))
        assert isinstance(background, tuple) and isinstance(red, tuple)
        assert 15 < max(background) < 70
        assert red[0] > 150 > 2 * max(red[1:])
        # The same picture as the ink-subtracting conversion, but for that black.
        assert mean_difference(rendition, cmyk.convert("RGB")) < 40


def test_render_converts_embedded_profile_to_srgb() -> None:
    profile = profile_with_red_and_green_swapped()
    original = Image.new("RGB", (32, 32), (200, 40, 30))
    original.paste((20, 30, 220), (0, 0, 16, 32))
    data = encode(original, "PNG", icc_profile=profile)
    expected = ImageCms.profileToProfile(
        original, ImageCms.ImageCmsProfile(io.BytesIO(profile)), SRGB, outputMode="RGB"
    )
    assert expected is not None
    result = render(data, presets=[Preset("out", 64, 64, quality=100)])
    with decode(result.renditions[0].data) as rendition:
        assert mean_difference(rendition, expected) < 4
        right = rendition.getpixel((24, 16))
        assert isinstance(right, tuple)
        assert right[1] > 150 > right[0]  # the profile's red is a green in sRGB


def test_render_icc_profile_png_matches_imagecms_conversion() -> None:
    with Image.open(IMAGES / "good/icc_profile.png") as original:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(original.info["icc_profile"]))
        expected = ImageCms.profileToProfile(original, profile, SRGB, outputMode="RGBA")
        assert expected is not None
    result = render((IMAGES / "good/icc_profile.png").read_bytes())
    with decode(result.renditions[0].data) as rendition:
        assert mean_difference(rendition, expected) < 6


@pytest.mark.parametrize("name", GOOD)
def test_render_strips_all_metadata(name: str) -> None:
    result = render((IMAGES / "good" / name).read_bytes(), presets=EVERY_FORMAT)
    for rendition in result.renditions:
        assert_no_metadata(rendition.data)


def test_render_strips_gps_from_exif_gps_jpg() -> None:
    data = (IMAGES / "good/exif_gps.jpg").read_bytes()
    with Image.open(io.BytesIO(data)) as original:  # guard: the original does carry GPS
        assert original.getexif().get_ifd(GPS_IFD)
    for rendition in render(data, presets=EVERY_FORMAT).renditions:
        assert_no_metadata(rendition.data)


def test_render_strips_xmp_and_icc_from_a_tagged_original() -> None:
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><secret>where</secret></x:xmpmeta>'
    exif = Image.Exif()
    exif[0x010E] = "private description"
    data = encode(
        Image.new("RGB", (40, 40), "red"),
        "WEBP",
        xmp=xmp,
        exif=exif,
        icc_profile=profile_with_red_and_green_swapped(),
    )
    for rendition in render(data, presets=EVERY_FORMAT).renditions:
        assert_no_metadata(rendition.data)
        assert b"secret" not in rendition.data and b"private" not in rendition.data


@pytest.mark.parametrize("image_format", ["webp", "avif"])
def test_render_keeps_transparency_where_the_format_has_it(image_format: str) -> None:
    preset = Preset("out", 256, 256, format=image_format, quality=90)  # type: ignore[arg-type]
    result = render((IMAGES / "good/transparent.png").read_bytes(), presets=[preset])
    with (
        decode(result.renditions[0].data) as rendition,
        Image.open(IMAGES / "good/transparent.png") as original,
    ):
        assert rendition.mode == "RGBA"
        alpha, original_alpha = rendition.getchannel("A"), original.getchannel("A")
        assert alpha.getextrema() == original_alpha.getextrema()
        assert mean_difference(alpha.convert("RGB"), original_alpha.convert("RGB")) < 3


def test_render_jpeg_gets_the_documented_background_under_transparency() -> None:
    result = render(
        (IMAGES / "good/transparent.png").read_bytes(),
        presets=[Preset("out", 256, 256, format="jpeg", quality=95)],
    )
    with (
        decode(result.renditions[0].data) as rendition,
        Image.open(IMAGES / "good/transparent.png") as original,
    ):
        assert rendition.mode == "RGB"
        transparent = next(
            (x, y)
            for y in range(original.height)
            for x in range(original.width)
            if original.getpixel((x, y))[3] == 0  # type: ignore[index]
        )
        pixel = rendition.getpixel(transparent)
        assert isinstance(pixel, tuple)
        assert all(abs(a - b) <= 3 for a, b in zip(pixel, JPEG_BACKGROUND, strict=True))


def test_render_drops_an_alpha_channel_that_is_fully_opaque() -> None:
    data = encode(Image.new("RGBA", (30, 30), (10, 20, 30, 255)), "PNG")
    with decode(render(data).renditions[0].data) as rendition:
        assert rendition.mode == "RGB"


# nclx colour primaries (ITU-T H.273): 1 is BT.709 (sRGB's), 12 Display P3.
BT709, DISPLAY_P3 = 1, 12
P3_COLOUR = (200, 100, 50)


def srgb_from_display_p3(colour: tuple[int, int, int]) -> tuple[int, ...]:
    """The reference conversion, from the two colour spaces' definitions: both use the sRGB
    transfer curve, and the linear-light matrix from P3-D65 primaries to BT.709 ones."""

    def linear(value: int) -> float:
        v = value / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    def encoded(v: float) -> int:
        v = min(1.0, max(0.0, v))
        return round(255 * (12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055))

    matrix = ((1.2249, -0.2247, 0.0), (-0.0420, 1.0419, 0.0), (-0.0197, -0.0786, 1.0979))
    p3 = [linear(value) for value in colour]
    return tuple(encoded(sum(m * c for m, c in zip(row, p3, strict=True))) for row in matrix)


def heic_with_nclx(colour: tuple[int, int, int], primaries: int) -> bytes:
    """A HEIC with nclx colour information and no ICC profile, as iPhones may write."""
    heif = pillow_heif.from_pillow(Image.new("RGB", (64, 64), colour))
    nclx = {
        "color_primaries": primaries,
        "transfer_characteristics": 13,
        "matrix_coefficients": 6,
        "full_range_flag": 1,
    }
    buffer = io.BytesIO()
    heif.save(buffer, format="HEIF", quality=-1, nclx_profile=nclx)  # -1: lossless
    return buffer.getvalue()


def avif_with_nclx(colour: tuple[int, int, int], primaries: int) -> bytes:
    """An AVIF whose nclx says `primaries`. libavif (through Pillow) writes BT.709 ones; the
    box's primaries field, right after `colr` and `nclx`, is rewritten."""
    data = bytearray(encode(Image.new("RGB", (64, 64), colour), "AVIF", quality=100))
    box = data.index(b"colrnclx") + len(b"colrnclx")
    data[box : box + 2] = primaries.to_bytes(2, "big")
    return bytes(data)


@pytest.mark.parametrize(
    ("make", "content_type"), [(heic_with_nclx, "image/heic"), (avif_with_nclx, "image/avif")]
)
def test_render_converts_nclx_display_p3_to_srgb(
    make: Callable[[tuple[int, int, int], int], bytes], content_type: str
) -> None:
    preset = [Preset("out", 32, 32, format="webp", quality=100)]
    for primaries, expected in [
        (DISPLAY_P3, srgb_from_display_p3(P3_COLOUR)),
        (BT709, P3_COLOUR),  # sRGB's primaries: nothing to convert
    ]:
        data = make(P3_COLOUR, primaries)
        result = render(data, presets=preset, declared_content_type=content_type)
        with decode(result.renditions[0].data) as rendition:
            centre = rendition.getpixel((16, 16))
            assert isinstance(centre, tuple)
            assert max(abs(a - b) for a, b in zip(centre, expected, strict=True)) <= 4, (
                primaries,
                centre,
                expected,
            )
