"""`GET /v1/images`: the owner's images, newest first, in pages that hold still."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.routes import answers
from tests.flow import create_image
from tests.service.state import set_status


async def make_images(client: httpx.AsyncClient, count: int, prefix: str = "img") -> list[str]:
    ids = []
    for n in range(count):
        created = await create_image(
            client, filename=f"{prefix}-{n}.png", content_type="image/png", size_bytes=10
        )
        ids.append(created["id"])
    return ids


async def list_page(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/images", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def list_all(client: httpx.AsyncClient, **params: Any) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = await list_page(client, **params, **({"cursor": cursor} if cursor else {}))
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def test_list_images_empty(client: httpx.AsyncClient) -> None:
    assert await list_page(client) == {"items": [], "next_cursor": None}


async def test_list_images_pages_newest_first(client: httpx.AsyncClient) -> None:
    ids = await make_images(client, 7)

    first = await list_page(client, limit=3)
    second = await list_page(client, limit=3, cursor=first["next_cursor"])
    third = await list_page(client, limit=3, cursor=second["next_cursor"])

    newest_first = list(reversed(ids))
    assert [i["id"] for i in first["items"]] == newest_first[:3]
    assert [i["id"] for i in second["items"]] == newest_first[3:6]
    assert [i["id"] for i in third["items"]] == newest_first[6:]
    assert third["next_cursor"] is None


async def test_list_images_last_full_page_has_no_next_cursor(client: httpx.AsyncClient) -> None:
    await make_images(client, 4)

    first = await list_page(client, limit=2)
    second = await list_page(client, limit=2, cursor=first["next_cursor"])

    assert first["next_cursor"] is not None
    assert len(second["items"]) == 2
    assert second["next_cursor"] is None


async def test_list_images_neither_repeats_nor_skips_while_images_arrive(
    client: httpx.AsyncClient,
) -> None:
    existing = await make_images(client, 9, prefix="old")
    seen: list[str] = []
    arrived: list[str] = []

    page = await list_page(client, limit=2)
    while True:
        seen += [item["id"] for item in page["items"]]
        # New images land between every two page fetches, before the cursor's position.
        arrived += await make_images(client, 2, prefix=f"new{len(seen)}")
        if page["next_cursor"] is None:
            break
        page = await list_page(client, limit=2, cursor=page["next_cursor"])

    assert seen == list(reversed(existing))
    assert await list_all(client, limit=100) == list(reversed(existing + arrived))


async def test_list_images_filters_by_status(client: httpx.AsyncClient, db: AsyncEngine) -> None:
    ids = await make_images(client, 5)
    for image_id in ids[1::2]:
        await set_status(db, image_id, "ready")

    ready = await list_all(client, status="ready", limit=1)
    waiting = await list_all(client, status="awaiting_upload", limit=1)

    assert ready == list(reversed(ids[1::2]))
    assert waiting == list(reversed(ids[0::2]))
    assert await list_all(client, status="failed") == []


async def test_list_images_shows_only_own_images(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient
) -> None:
    mine = await make_images(client, 3)
    theirs = await make_images(other_client, 2)

    assert await list_all(client, limit=2) == list(reversed(mine))
    assert await list_all(other_client, limit=1) == list(reversed(theirs))


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "%%%",
        "MjAyNi0xMS0zMFQwOToxNTowMi4xMjM0NTYrMDA6MDB8MGI3ZTVkOWM",  # the old base64 form
        f"{'1' * 15}-{uuid.uuid4().hex}",
        f"{'1' * 16}-{uuid.uuid4().hex.upper()}",
        f"{'1' * 16}-{uuid.uuid4()}",
        f"{'1' * 16}-{uuid.uuid4().hex}-extra",
    ],
    ids=["punctuation", "percent", "base64", "short-time", "upper-hex", "dashed-id", "extra"],
)
async def test_list_images_refuses_malformed_cursor(client: httpx.AsyncClient, cursor: str) -> None:
    response = await client.get("/v1/images", params={"cursor": cursor})

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "validation_error"
    assert response.json()["errors"][0]["location"] == ["query", "cursor"]


async def test_list_images_pages_from_any_cursor_of_the_documented_form(
    client: httpx.AsyncClient,
) -> None:
    # Every cursor the pattern admits is a position, issued or not: the page after it.
    ids = await make_images(client, 3)
    last = await list_page(client, limit=1)
    issued = last["next_cursor"]

    latest = await list_page(client, cursor=f"{'9' * 16}-{'f' * 32}")
    earliest = await list_page(client, cursor=f"{'0' * 16}-{'0' * 32}")

    assert issued is not None and issued[:16].isdigit()
    assert [item["id"] for item in latest["items"]] == list(reversed(ids))
    assert earliest == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"status": "gone"}, {"stauts": "ready"}],
)
async def test_list_images_refuses_bad_parameters(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await client.get("/v1/images", params=params)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert response.json()["errors"][0]["location"][0] == "query"


async def test_list_images_lets_other_requests_run_between_its_images(
    client: httpx.AsyncClient, db: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [uuid.UUID(image_id) for image_id in await make_images(client, 30)]
    async with db.begin() as connection:
        await connection.execute(
            text("UPDATE images SET status = 'ready', width = 4, height = 3 WHERE id = ANY(:ids)"),
            {"ids": ids},
        )
        await connection.execute(
            text(
                "INSERT INTO renditions (image_id, name, key, width, height, format, size_bytes) "
                "SELECT id, name, 'renditions/' || id || '/' || name || '.webp', 4, 3, 'webp', 9 "
                "FROM images, unnest(ARRAY['thumb', 'small']) AS name WHERE id = ANY(:ids)"
            ),
            {"ids": ids},
        )
    turns = 0
    turns_seen_by_signing: list[int] = []
    signing = answers.presign_download

    async def presign_download(*args: Any, **kwargs: Any) -> str:
        turns_seen_by_signing.append(turns)
        return await signing(*args, **kwargs)

    async def another_request() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    monkeypatch.setattr(answers, "presign_download", presign_download)
    other = asyncio.create_task(another_request())
    page = await list_page(client, limit=30)
    other.cancel()

    assert len(page["items"]) == 30
    assert len(turns_seen_by_signing) == 60
    # Signing never waits, so another request runs only if the listing makes room: it does
    # between images, and a page of signed URLs holds the process one image at a time.
    assert len(set(turns_seen_by_signing)) == 30
