"""`GET /v1/images/{id}`: the owner's record with every rendition; anyone else's is missing."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import ApiSettings
from service.main import create_app
from tests.conftest import KeyMaker, api_client
from tests.flow import create_image, fetch
from tests.service.state import add_rendition, set_status

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


async def test_get_image_returns_record_with_every_rendition(
    client: httpx.AsyncClient, db: AsyncEngine, s3: S3Client, api_settings: ApiSettings
) -> None:
    created = await create_image(client, filename="a.png", content_type="image/png", size_bytes=9)
    for name in ("thumb", "large"):
        await add_rendition(db, s3, api_settings, created["id"], name)
    await set_status(db, created["id"], "ready")

    response = await client.get(f"/v1/images/{created['id']}")

    assert response.status_code == 200
    record = response.json()
    assert record["status"] == "ready"
    assert sorted(r["name"] for r in record["renditions"]) == ["large", "thumb"]
    # Pre-signed by default: the private bucket serves them to whoever holds the URL.
    for rendition in record["renditions"]:
        assert "X-Amz-Signature=" in rendition["url"]
        assert (await fetch(rendition["url"])).content == b"RIFF....WEBP"


async def test_get_image_uses_plain_urls_under_public_base_url(
    api_settings: ApiSettings, make_key: KeyMaker, db: AsyncEngine, s3: S3Client
) -> None:
    settings = api_settings.model_copy(update={"public_base_url": "https://cdn.example.com/"})
    app = create_app(settings)
    async with app.router.lifespan_context(app), api_client(app, await make_key("alice")) as cdn:
        created = await create_image(cdn, filename="a", content_type="image/png", size_bytes=9)
        key = await add_rendition(db, s3, api_settings, created["id"])

        [rendition] = (await cdn.get(f"/v1/images/{created['id']}")).json()["renditions"]

    assert rendition["url"] == f"https://cdn.example.com/{key}"


async def test_get_image_of_other_owner_is_indistinguishable_from_missing(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient
) -> None:
    created = await create_image(client, filename="a", content_type="image/png", size_bytes=9)
    missing = str(uuid.uuid4())

    theirs = await other_client.get(f"/v1/images/{created['id']}")
    absent = await other_client.get(f"/v1/images/{missing}")

    assert theirs.status_code == absent.status_code == 404
    assert theirs.json()["code"] == absent.json()["code"] == "image_not_found"
    assert theirs.json()["detail"].replace(created["id"], missing) == absent.json()["detail"]
    assert theirs.headers.keys() == absent.headers.keys()


@pytest.mark.parametrize("image_id", ["not-a-uuid", "1234", "0b7e5d9c-3f41-4a63-9a8e"])
async def test_get_image_refuses_malformed_id(client: httpx.AsyncClient, image_id: str) -> None:
    response = await client.get(f"/v1/images/{image_id}")

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert response.json()["errors"][0]["location"] == ["path", "image_id"]
