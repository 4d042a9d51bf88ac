"""With a CDN: rendition URLs cannot be derived from an image id, and DELETE invalidates the
image's renditions at the distribution before it answers (the emulator speaks CloudFront)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import boto3
import httpx
import pytest
from fastapi import FastAPI

from devstack.emulator import Emulator
from service.cdn import invalidation_path
from service.config import ApiSettings
from service.main import create_app
from tests.cdn import create_distribution
from tests.conftest import OWNER, TESTDATA, KeyMaker, api_client
from tests.flow import upload_image, wait_until_finished

CDN = "https://cdn.example.test"


def cloudfront(emulator: Emulator) -> Any:
    return boto3.client("cloudfront", endpoint_url=emulator.url, region_name="us-east-1")


@pytest.fixture
def distribution_id(emulator: Emulator, api_settings: ApiSettings) -> str:
    return create_distribution(cloudfront(emulator), api_settings.renditions_bucket)["Id"]


@pytest.fixture
async def cdn_client(
    api_settings: ApiSettings, distribution_id: str, make_key: KeyMaker
) -> AsyncIterator[httpx.AsyncClient]:
    settings = api_settings.model_copy(
        update={"public_base_url": CDN, "cdn_distribution_id": distribution_id}
    )
    app: FastAPI = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        api_client(app, await make_key(OWNER)) as http,
    ):
        yield http


@pytest.mark.usefixtures("worker")
async def test_cdn_rendition_urls_are_not_derivable_and_delete_invalidates_them(
    cdn_client: httpx.AsyncClient, emulator: Emulator, distribution_id: str
) -> None:
    data = (TESTDATA / "good" / "hopper.png").read_bytes()
    created = await upload_image(cdn_client, data, filename="h.png", content_type="image/png")
    ready = await wait_until_finished(cdn_client, created["id"])
    assert ready["status"] == "ready", ready

    for rendition in ready["renditions"]:
        url = httpx.URL(rendition["url"])
        _, prefix, image_id, token, _ = url.path.split("/")
        assert str(url).startswith(f"{CDN}/renditions/")
        assert (prefix, image_id) == ("renditions", created["id"])
        # 128 random bits the id does not determine: another image's token is another.
        assert len(token) == 32 and token not in created["id"].replace("-", "")

    assert (await cdn_client.delete(f"/v1/images/{created['id']}")).status_code == 204

    listing = cloudfront(emulator).list_invalidations(DistributionId=distribution_id)
    [summary] = listing["InvalidationList"]["Items"]
    invalidation = cloudfront(emulator).get_invalidation(
        DistributionId=distribution_id, Id=summary["Id"]
    )["Invalidation"]
    paths = invalidation["InvalidationBatch"]["Paths"]["Items"]
    assert paths == [invalidation_path(uuid.UUID(created["id"]))]
    assert paths == [f"/renditions/{created['id']}/*"]


async def test_cdn_delete_keeps_the_image_when_the_invalidation_fails(
    api_settings: ApiSettings, make_key: KeyMaker
) -> None:
    settings = api_settings.model_copy(update={"cdn_distribution_id": "ENOSUCHDISTRIBUTION"})
    app = create_app(settings)
    async with app.router.lifespan_context(app), api_client(app, await make_key(OWNER)) as http:
        created = (
            await http.post(
                "/v1/images",
                json={"filename": "a.png", "content_type": "image/png", "size_bytes": 9},
            )
        ).json()

        response = await http.delete(f"/v1/images/{created['id']}")

        assert response.status_code == 503, response.text
        assert response.json()["code"] == "dependency_unavailable"
        assert (await http.get(f"/v1/images/{created['id']}")).status_code == 200
