"""Quality, measured: the 1280 px rendition against a full-resolution float Lanczos reference.

The metric is PSNR over RGB, against Lanczos-3 applied in floating point to the full decode of
the original (Pillow, per channel in mode F, rounded once at the end). The bound is 40 dB for
the pixels before encoding: an RMS error under 2.6 levels of 255, where the eye stops telling
two resizes apart, and well under what the encoder itself takes away (WebP q80 on these
pictures: 30-36 dB). Reduced-scale decoding is where a fast pipeline loses quality, so the
inputs cover every shrink-on-load path: JPEG decoded at full size and at 1/2 scale, WebP at
reduced scale, and PNG, which has none. The pictures carry detail down to single pixels (noise
on gradients and shapes), the worst case for DCT scaling; real photographs lose less.

Then the rendition as served: after the WebP encode it must be within 0.5 dB of the reference
encoded with the same settings, so the pipeline adds nothing the encoder does not.
"""

from __future__ import annotations

import io
import math

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from tests.pictures import decode, encode
from worker.decoding import decode_at, open_original
from worker.renditions import WEBP_EFFORT, Preset, render
from worker.validation import Probe

PSNR_BOUND_DB = 40.0
ENCODED_SLACK_DB = 0.5
LARGE = Preset("large", 1280, 1280)


def photo_like(size: tuple[int, int], *, smooth: bool) -> Image.Image:
    """Gradients, shapes and noise at two scales; `smooth` blurs away the single-pixel noise."""
    width, height = size
    red = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size)
    image = Image.merge("RGB", (red, green, red.transpose(Image.Transpose.ROTATE_180)))
    draw = ImageDraw.Draw(image)
    for index in range(40):
        x, y = (index * 397 * 7) % width, (index * 211 * 5) % height
        side = width // (8 + index % 9)
        draw.ellipse((x, y, x + side, y + side * 2 // 3), fill=(index * 6, 90, 240 - index * 5))
    coarse = Image.effect_noise((width // 8, height // 8), 40).resize(size).convert("RGB")
    image = ImageChops.add(image, coarse, offset=-128)
    if smooth:
        return image.filter(ImageFilter.GaussianBlur(1.5))
    fine = Image.effect_noise(size, 24).convert("RGB")
    return ImageChops.add(image, fine, offset=-128)


def psnr(first: Image.Image, second: Image.Image) -> float:
    difference = ImageChops.difference(first.convert("RGB"), second.convert("RGB"))
    mse = sum(rms**2 for rms in ImageStat.Stat(difference).rms) / 3
    return 10 * math.log10(255**2 / mse) if mse else math.inf


def float_lanczos(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    channels = image.convert("RGB").split()
    resized = (channel.convert("F").resize(size, Image.Resampling.LANCZOS) for channel in channels)
    return Image.merge("RGB", [channel.convert("L") for channel in resized])


CASES = [
    # (label, size, smooth, format, params)
    ("12 MP smooth JPEG, full-size decode", (4000, 3000), True, "JPEG", {"quality": 92}),
    ("24 MP detailed JPEG, 1/2-scale decode", (6000, 4000), False, "JPEG", {"quality": 92}),
    ("12 MP detailed WebP, reduced-scale decode", (4000, 3000), False, "WEBP", {"quality": 92}),
    ("12 MP detailed PNG", (4000, 3000), False, "PNG", {"compress_level": 1}),
]


@pytest.fixture(scope="module", params=CASES, ids=[case[0] for case in CASES])
def original(request: pytest.FixtureRequest) -> tuple[bytes, Image.Image]:
    _, size, smooth, image_format, params = request.param
    data = encode(photo_like(size, smooth=smooth), image_format, **params)
    reference = float_lanczos(decode(data), (1280, round(size[1] * 1280 / size[0])))
    return data, reference


def test_render_quality_1280_px_pixels_within_40_db_of_float_lanczos(
    original: tuple[bytes, Image.Image],
) -> None:
    data, reference = original
    with Image.open(io.BytesIO(data)) as image:
        probe = Probe(format=image.format or "", width=image.width, height=image.height, frames=1)
    decoded = decode_at(open_original(data, probe), reference.size)
    pixels = Image.frombytes("RGB", reference.size, decoded.write_to_memory())
    assert psnr(pixels, reference) >= PSNR_BOUND_DB


def test_render_quality_1280_px_rendition_loses_no_more_than_its_encoder(
    original: tuple[bytes, Image.Image],
) -> None:
    data, reference = original
    rendition = render(data, presets=[LARGE]).renditions[0]
    same_encode = encode(reference, "WEBP", quality=LARGE.quality, method=WEBP_EFFORT)
    with decode(rendition.data) as served, decode(same_encode) as encoded_reference:
        assert served.size == reference.size
        floor = psnr(encoded_reference, reference)
        assert psnr(served, reference) >= floor - ENCODED_SLACK_DB
