"""Every image in shared/testdata/images/ through the whole pipeline, behaving as that folder's
README says: good ones end `ready` with upright, sRGB, metadata-free renditions; bad ones end
`failed` with a machine-readable reason, and the worker keeps going."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import TESTDATA
from tests.flow import fetch, upload_image, wait_until_finished
from tests.pictures import decode, mean_difference

pytestmark = pytest.mark.usefixtures("worker")

CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "avif": "image/avif",
}
PRESET_BOXES = {"thumb": 128, "small": 320, "medium": 640, "large": 1280}
ROTATED = ["hopper_orientation_3.jpg", "hopper_orientation_6.jpg", "hopper_orientation_8.webp"]
EXPECTED_FAILURES = {
    "decompression_bomb.gif": "pixel_limit_exceeded",
    "truncated_jpeg.jpg": "corrupt_image",
    "broken.png": "corrupt_image",
}


def content_type(name: str) -> str:
    return CONTENT_TYPES[name.rsplit(".", 1)[1]]


async def process(client: httpx.AsyncClient, folder: str, name: str) -> dict[str, Any]:
    data = (TESTDATA / folder / name).read_bytes()
    created = await upload_image(client, data, filename=name, content_type=content_type(name))
    return await wait_until_finished(client, created["id"])


async def fetch_renditions(record: dict[str, Any]) -> dict[str, Image.Image]:
    images = {}
    for rendition in record["renditions"]:
        response = await fetch(rendition["url"])
        assert response.headers["content-type"] == f"image/{rendition['format']}"
        images[rendition["name"]] = decode(response.content)
    return images


@pytest.mark.parametrize("name", sorted(p.name for p in (TESTDATA / "good").iterdir()))
async def test_good_image_ends_ready_with_clean_renditions(
    client: httpx.AsyncClient, name: str
) -> None:
    record = await process(client, "good", name)

    assert record["status"] == "ready", record
    assert record["placeholder"]["dominant_color"].startswith("#")
    renditions = await fetch_renditions(record)
    assert renditions.keys() == PRESET_BOXES.keys()
    for preset, image in renditions.items():
        assert max(image.size) <= PRESET_BOXES[preset]
        assert image.size[0] <= record["width"] and image.size[1] <= record["height"]
        assert image.mode in {"RGB", "RGBA"}, f"{preset} is {image.mode}, not sRGB RGB(A)"
        assert not image.getexif(), f"{preset} carries EXIF"
        assert "icc_profile" not in image.info and "xmp" not in image.info
        assert getattr(image, "n_frames", 1) == 1


@pytest.mark.parametrize("name", ROTATED)
async def test_rotated_image_renditions_come_out_upright(
    client: httpx.AsyncClient, name: str
) -> None:
    upright = decode((TESTDATA / "good" / "hopper.jpg").read_bytes())

    record = await process(client, "good", name)

    thumb = (await fetch_renditions(record))["thumb"]
    assert mean_difference(thumb, upright) < 10
    assert mean_difference(thumb, upright.rotate(90)) > 2 * mean_difference(thumb, upright)


async def test_transparent_png_keeps_its_alpha(client: httpx.AsyncClient) -> None:
    record = await process(client, "good", "transparent.png")

    thumb = (await fetch_renditions(record))["thumb"]
    assert thumb.mode == "RGBA"
    assert thumb.getextrema()[3][0] < 255, "no transparent pixel survived"


@pytest.mark.parametrize("name", sorted(EXPECTED_FAILURES))
async def test_bad_image_fails_with_its_reason(client: httpx.AsyncClient, name: str) -> None:
    record = await process(client, "bad", name)

    assert record["status"] == "failed"
    assert record["error"]["code"] == EXPECTED_FAILURES[name]
    assert record["error"]["message"]
    assert record["renditions"] == [] and record["placeholder"] is None
