"""`DELETE /v1/images/{id}`: the record, the original and every rendition go, even mid-render."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import ApiSettings
from tests.conftest import TESTDATA, RenderGate
from tests.flow import create_image, upload_image, wait_for_status
from tests.queue import wait_until_queue_drained
from tests.service.state import add_rendition, all_objects, all_versions, list_keys, set_status

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient

HOPPER_JPG = (TESTDATA / "good" / "hopper.jpg").read_bytes()


async def test_delete_image_removes_record_original_and_renditions(
    client: httpx.AsyncClient, db: AsyncEngine, s3: S3Client, api_settings: ApiSettings
) -> None:
    created = await upload_image(client, HOPPER_JPG, filename="a.jpg", content_type="image/jpeg")
    for name in ("thumb", "small"):
        await add_rendition(db, s3, api_settings, created["id"], name)
    await set_status(db, created["id"], "ready")
    # A rendition the worker wrote but never recorded goes too: the prefix is listed.
    await s3.put_object(
        Bucket=api_settings.renditions_bucket, Key=f"renditions/{created['id']}/stray.avif"
    )
    assert len(await all_objects(s3, api_settings)) == 4

    response = await client.delete(f"/v1/images/{created['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert await all_versions(s3, api_settings) == []
    assert (await client.get(f"/v1/images/{created['id']}")).status_code == 404
    again = await client.delete(f"/v1/images/{created['id']}")
    assert again.status_code == 404
    assert again.json()["code"] == "image_not_found"


async def test_delete_image_erases_noncurrent_versions_and_delete_markers(
    client: httpx.AsyncClient, db: AsyncEngine, s3: S3Client, api_settings: ApiSettings
) -> None:
    created = await upload_image(client, HOPPER_JPG, filename="a.jpg", content_type="image/jpeg")
    key = await add_rendition(db, s3, api_settings, created["id"])
    # What a versioned bucket accumulates: a rendition rewritten (a noncurrent version), a
    # stray deleted the plain way (a delete marker over its bytes), a second original.
    await s3.put_object(Bucket=api_settings.renditions_bucket, Key=key, Body=b"again")
    stray = f"renditions/{created['id']}/stray.avif"
    await s3.put_object(Bucket=api_settings.renditions_bucket, Key=stray, Body=b"x")
    await s3.delete_object(Bucket=api_settings.renditions_bucket, Key=stray)
    await s3.put_object(
        Bucket=api_settings.uploads_bucket, Key=f"originals/{created['id']}", Body=b"later"
    )
    assert len(await all_versions(s3, api_settings)) == 6

    response = await client.delete(f"/v1/images/{created['id']}")

    assert response.status_code == 204
    assert await all_versions(s3, api_settings) == []


async def test_delete_image_leaves_other_images_alone(
    client: httpx.AsyncClient, db: AsyncEngine, s3: S3Client, api_settings: ApiSettings
) -> None:
    doomed = await create_image(client, filename="a", content_type="image/png", size_bytes=9)
    kept = await upload_image(client, HOPPER_JPG, filename="b.jpg", content_type="image/jpeg")
    kept_rendition = await add_rendition(db, s3, api_settings, kept["id"])

    assert (await client.delete(f"/v1/images/{doomed['id']}")).status_code == 204

    assert await list_keys(s3, api_settings.renditions_bucket) == [kept_rendition]
    assert await list_keys(s3, api_settings.uploads_bucket) == [f"originals/{kept['id']}"]
    assert (await client.get(f"/v1/images/{kept['id']}")).status_code == 200


async def test_delete_image_of_other_owner_is_not_found_and_keeps_it(
    client: httpx.AsyncClient,
    other_client: httpx.AsyncClient,
    s3: S3Client,
    api_settings: ApiSettings,
) -> None:
    created = await upload_image(client, HOPPER_JPG, filename="a.jpg", content_type="image/jpeg")

    response = await other_client.delete(f"/v1/images/{created['id']}")

    assert response.status_code == 404
    assert response.json()["code"] == "image_not_found"
    assert (await client.get(f"/v1/images/{created['id']}")).status_code == 200
    assert await list_keys(s3, api_settings.uploads_bucket) == [f"originals/{created['id']}"]


async def test_delete_missing_image_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.delete(f"/v1/images/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["code"] == "image_not_found"


@pytest.mark.usefixtures("worker")
async def test_delete_image_while_worker_renders_leaves_no_objects(
    client: httpx.AsyncClient,
    s3: S3Client,
    sqs: SQSClient,
    api_settings: ApiSettings,
    held_renders: RenderGate,
) -> None:
    created = await upload_image(client, HOPPER_JPG, filename="a.jpg", content_type="image/jpeg")
    await asyncio.wait_for(held_renders.started.wait(), timeout=30)
    rendering = await wait_for_status(client, created["id"], "processing")
    assert rendering["renditions"] == []

    response = await client.delete(f"/v1/images/{created['id']}")
    held_renders.release.set()

    assert response.status_code == 204
    # The worker finishes rendering after the record is gone, writes its renditions, finds no
    # row to record them in, and takes them back.
    await wait_until_queue_drained(sqs, api_settings.queue_url)
    assert await all_versions(s3, api_settings) == []


@pytest.mark.usefixtures("worker")
async def test_delete_image_right_after_upload_leaves_no_objects(
    client: httpx.AsyncClient, s3: S3Client, sqs: SQSClient, api_settings: ApiSettings
) -> None:
    created = await upload_image(client, HOPPER_JPG, filename="a.jpg", content_type="image/jpeg")

    response = await client.delete(f"/v1/images/{created['id']}")

    assert response.status_code == 204
    await wait_until_queue_drained(sqs, api_settings.queue_url)
    assert await all_versions(s3, api_settings) == []
