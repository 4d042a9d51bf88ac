"""Placeholders: ThumbHash (checked by decoding it back) and the dominant colour."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.pictures import mean_difference
from worker.placeholder import dominant_color, make_placeholder
from worker.renditions import render
from worker.thumbhash import rgba_to_thumbhash, thumbhash_to_rgba

IMAGES = Path(__file__).resolve().parents[2].parent / "shared/testdata/images"


def decode_thumbhash(thumbhash: str) -> Image.Image:
    width, height, rgba = thumbhash_to_rgba(base64.b64decode(thumbhash))
    return Image.frombytes("RGBA", (width, height), rgba)


def two_tone(size: tuple[int, int]) -> Image.Image:
    """Left half blue, right half yellow: a ThumbHash must keep where each is."""
    image = Image.new("RGB", size, (20, 40, 200))
    ImageDraw.Draw(image).rectangle((size[0] // 2, 0, size[0], size[1]), fill=(240, 220, 30))
    return image


def test_dominant_color_of_solid_red_is_ff0000() -> None:
    assert dominant_color(Image.new("RGB", (50, 50), (255, 0, 0))) == "#ff0000"


def test_dominant_color_is_the_largest_area_not_the_average() -> None:
    image = Image.new("RGB", (30, 30), (0, 128, 0))
    image.paste((255, 255, 255), (0, 0, 30, 10))  # a third white: the average would be pale
    assert dominant_color(image) == "#008000"


def test_dominant_color_ignores_transparent_pixels() -> None:
    image = Image.new("RGBA", (30, 30), (0, 0, 0, 0))  # mostly transparent black
    image.paste((0, 0, 255, 255), (0, 0, 10, 10))
    assert dominant_color(image) == "#0000ff"


@pytest.mark.parametrize("size", [(32, 32), (32, 16), (12, 30)])
def test_thumbhash_decodes_back_to_roughly_the_image(size: tuple[int, int]) -> None:
    image = two_tone(size)
    hash_bytes = rgba_to_thumbhash(*size, image.convert("RGBA").tobytes())
    decoded = decode_thumbhash(base64.b64encode(hash_bytes).decode())
    assert len(hash_bytes) <= 25
    # The aspect ratio survives, approximately.
    assert decoded.width / decoded.height == pytest.approx(size[0] / size[1], rel=0.3)
    # Blurred, but the left stays blue and the right yellow.
    left = decoded.getpixel((decoded.width // 8, decoded.height // 2))
    right = decoded.getpixel((decoded.width * 7 // 8, decoded.height // 2))
    assert isinstance(left, tuple) and isinstance(right, tuple)
    assert left[2] > 150 > left[0]
    assert right[0] > 150 > right[2]
    assert mean_difference(decoded, image.resize(decoded.size)) < 35


def gradients(size: tuple[int, int]) -> Image.Image:
    """No symmetry, so no DCT term sits exactly on a rounding boundary."""
    red = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size).rotate(30)
    blue = Image.linear_gradient("L").rotate(70).resize(size)
    return Image.merge("RGB", (red, green, blue)).convert("RGBA")


# Produced by the reference implementation (npm thumbhash 0.1.1, by Evan Wallace) from the same
# pixels: hashes we store decode the same in clients' libraries.
def test_thumbhash_matches_reference_implementation_bit_for_bit() -> None:
    opaque = gradients((32, 16))
    assert base64.b64encode(rgba_to_thumbhash(32, 16, opaque.tobytes())) == (
        b"3EcOTJpjaHhQaHiFhYevZXkHmg=="
    )
    with_alpha = gradients((20, 24))
    ImageDraw.Draw(with_alpha).ellipse((3, 2, 12, 20), fill=(0, 0, 0, 0))
    assert base64.b64encode(rgba_to_thumbhash(20, 24, with_alpha.tobytes())) == (
        b"HhiKRBY6Qwd5V0h19lmomHBJz3eH2FmICQ=="
    )


def test_thumbhash_of_solid_colour_decodes_to_that_colour() -> None:
    image = Image.new("RGBA", (20, 20), (200, 100, 50, 255))
    decoded = decode_thumbhash(
        base64.b64encode(rgba_to_thumbhash(20, 20, image.tobytes())).decode()
    )
    assert mean_difference(decoded, Image.new("RGB", decoded.size, (200, 100, 50))) < 6


def test_thumbhash_keeps_alpha() -> None:
    image = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    image.paste((255, 0, 0, 255), (8, 8, 24, 24))
    hash_bytes = rgba_to_thumbhash(32, 32, image.tobytes())
    assert hash_bytes[2] & 0x80  # the has-alpha bit
    decoded = Image.frombytes("RGBA", *_size_and_bytes(hash_bytes))
    alpha = decoded.getchannel("A")
    assert alpha.getpixel((0, 0)) < 80 < 180 < alpha.getpixel((16, 16))  # type: ignore[operator]


def _size_and_bytes(hash_bytes: bytes) -> tuple[tuple[int, int], bytes]:
    width, height, rgba = thumbhash_to_rgba(hash_bytes)
    return (width, height), rgba


def test_thumbhash_refuses_input_over_100_pixels() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        rgba_to_thumbhash(101, 1, bytes(404))


def test_placeholder_shrinks_a_large_image_first() -> None:
    placeholder = make_placeholder(two_tone((1000, 500)))
    decoded = decode_thumbhash(placeholder.thumbhash)
    assert decoded.width > decoded.height
    assert placeholder.dominant_color in {"#1428c8", "#f0dc1e"}


def test_render_placeholder_looks_like_the_rendition_blurred() -> None:
    result = render((IMAGES / "good/flower.webp").read_bytes())
    assert result.thumbhash is not None
    decoded = decode_thumbhash(result.thumbhash)
    with Image.open(io.BytesIO(result.renditions[0].data)) as thumb:
        # ThumbHash keeps ~7 cosines a side: compare with a comparable low-pass of the image.
        blurred = thumb.resize((8, 6), Image.Resampling.BOX).resize(decoded.size)
    assert mean_difference(decoded, blurred) < 15
    assert mean_difference(decoded, Image.new("RGB", decoded.size, "magenta")) > 60
    assert result.dominant_color is not None
    assert len(result.dominant_color) == 7 and result.dominant_color.startswith("#")
