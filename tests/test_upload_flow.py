"""The walking skeleton, end to end: an image goes from an upload ticket to a ready thumbnail
through real PostgreSQL, the emulator's S3 and SQS, and the real worker."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import TESTDATA
from tests.flow import (
    create_image,
    fetch,
    upload,
    upload_image,
    wait_until_finished,
)
from tests.pictures import decode, mean_difference

pytestmark = pytest.mark.usefixtures("worker")


def rendition(record: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [r for r in record["renditions"] if r["name"] == name]
    return found


async def test_upload_flow_makes_upright_thumbnail(client: httpx.AsyncClient) -> None:
    rotated = (TESTDATA / "good" / "hopper_orientation_6.jpg").read_bytes()
    upright_reference = decode((TESTDATA / "good" / "hopper.jpg").read_bytes())

    created = await upload_image(client, rotated, filename="cat.jpg", content_type="image/jpeg")
    assert created["status"] == "awaiting_upload"
    record = await wait_until_finished(client, created["id"])

    assert record["status"] == "ready", record
    assert (record["width"], record["height"]) == (128, 128)
    assert record["error"] is None
    assert sorted(r["name"] for r in record["renditions"]) == ["large", "medium", "small", "thumb"]
    thumb = rendition(record, "thumb")
    assert thumb["format"] == "webp"
    response = await fetch(thumb["url"])
    assert response.headers["content-type"] == "image/webp"
    assert len(response.content) == thumb["size_bytes"]
    image = decode(response.content)
    assert image.size == (thumb["width"], thumb["height"]) == (128, 128)
    # Upright: close to the unrotated original, far from the rotated pixels as stored.
    stored_rotation = decode(rotated)
    assert mean_difference(image, upright_reference) < 8
    assert mean_difference(image, stored_rotation) > 3 * mean_difference(image, upright_reference)


async def test_upload_flow_fits_thumbnail_in_box_keeping_aspect(
    client: httpx.AsyncClient,
) -> None:
    data = (TESTDATA / "good" / "transparent.png").read_bytes()  # 200x150
    created = await upload_image(client, data, filename="t.png", content_type="image/png")
    record = await wait_until_finished(client, created["id"])

    assert record["status"] == "ready", record
    assert (record["width"], record["height"]) == (200, 150)
    sizes = {r["name"]: (r["width"], r["height"]) for r in record["renditions"]}
    assert sizes == {
        "thumb": (128, 96),
        # Never upscaled: presets larger than the source get the source's size.
        "small": (200, 150),
        "medium": (200, 150),
        "large": (200, 150),
    }


async def test_upload_flow_never_upscales(client: httpx.AsyncClient) -> None:
    data = (TESTDATA / "good" / "exif_gps.jpg").read_bytes()  # 8x8
    created = await upload_image(client, data, filename="tiny.jpg", content_type="image/jpeg")
    record = await wait_until_finished(client, created["id"])

    assert {(r["width"], r["height"]) for r in record["renditions"]} == {(8, 8)}


@pytest.mark.parametrize("bad", sorted(p.name for p in (TESTDATA / "bad").iterdir()))
async def test_upload_flow_fails_bad_image_and_keeps_working(
    client: httpx.AsyncClient, bad: str
) -> None:
    content_type = {"png": "image/png", "gif": "image/gif", "jpg": "image/jpeg"}[
        bad.rsplit(".", 1)[1]
    ]
    bad_image = await upload_image(
        client, (TESTDATA / "bad" / bad).read_bytes(), filename=bad, content_type=content_type
    )
    good_data = (TESTDATA / "good" / "hopper.png").read_bytes()
    good_image = await upload_image(client, good_data, filename="ok.png", content_type="image/png")

    failed = await wait_until_finished(client, bad_image["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] in {"corrupt_image", "pixel_limit_exceeded"}
    assert failed["error"]["message"]
    assert failed["renditions"] == []
    assert (await wait_until_finished(client, good_image["id"]))["status"] == "ready"


async def test_s3_refuses_upload_larger_than_declared(client: httpx.AsyncClient) -> None:
    data = (TESTDATA / "good" / "hopper.jpg").read_bytes()
    created = await create_image(
        client, filename="a.jpg", content_type="image/jpeg", size_bytes=len(data) - 1
    )

    response = await upload(created["upload"], data, content_type="image/jpeg")

    assert response.status_code == 400
    assert "EntityTooLarge" in response.text


async def test_s3_refuses_upload_of_another_content_type(client: httpx.AsyncClient) -> None:
    data = (TESTDATA / "good" / "hopper.png").read_bytes()
    created = await create_image(
        client, filename="a.jpg", content_type="image/jpeg", size_bytes=len(data)
    )
    ticket = created["upload"]
    forged = {**ticket, "fields": {**ticket["fields"], "Content-Type": "image/png"}}

    response = await upload(forged, data, content_type="image/png")

    assert response.status_code == 403
    assert "Policy Condition failed" in response.text


async def test_s3_refuses_upload_to_another_key(client: httpx.AsyncClient) -> None:
    data = (TESTDATA / "good" / "hopper.jpg").read_bytes()
    created = await create_image(
        client, filename="a.jpg", content_type="image/jpeg", size_bytes=len(data)
    )
    ticket = created["upload"]
    forged = {**ticket, "fields": {**ticket["fields"], "key": "originals/someone-else"}}

    response = await upload(forged, data, content_type="image/jpeg")

    assert response.status_code == 403


async def test_upload_ticket_pins_key_type_and_size(client: httpx.AsyncClient) -> None:
    created = await create_image(
        client, filename="../../etc/passwd.jpg", content_type="image/jpeg", size_bytes=1000
    )
    ticket = created["upload"]

    assert ticket["method"] == "POST"
    assert ticket["fields"]["key"] == f"originals/{created['id']}"
    assert ticket["fields"]["Content-Type"] == "image/jpeg"
    assert created["filename"] == "../../etc/passwd.jpg"  # kept as a label, never in a key
