"""`Idempotency-Key` on create: a retry gets the same image, never a second one."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

BODY = {"filename": "cat.jpg", "content_type": "image/jpeg", "size_bytes": 48213}


async def post(
    client: httpx.AsyncClient, key: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    return await client.post("/v1/images", json=body or BODY, headers={"Idempotency-Key": key})


async def count_images(client: httpx.AsyncClient) -> int:
    return len((await client.get("/v1/images", params={"limit": 100})).json()["items"])


async def test_create_image_retry_with_same_key_returns_same_image(
    client: httpx.AsyncClient,
) -> None:
    key = str(uuid.uuid4())

    first = await post(client, key)
    retry = await post(client, key)

    assert first.status_code == retry.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["id"] == first.json()["id"]
    assert retry.json()["created_at"] == first.json()["created_at"]
    assert retry.json()["upload"]["fields"]["key"] == first.json()["upload"]["fields"]["key"]
    assert await count_images(client) == 1


async def test_create_image_same_key_with_other_body_is_conflict(
    client: httpx.AsyncClient,
) -> None:
    key = str(uuid.uuid4())
    await post(client, key)

    response = await post(client, key, {**BODY, "size_bytes": 1})

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "idempotency_conflict"
    assert await count_images(client) == 1


async def test_create_image_idempotency_ignores_json_spelling(client: httpx.AsyncClient) -> None:
    key = str(uuid.uuid4())
    first = await post(client, key)

    reordered = {"upload_method": "post", **dict(reversed(BODY.items()))}
    retry = await post(client, key, reordered)

    assert retry.status_code == 201
    assert retry.json()["id"] == first.json()["id"]


async def test_create_image_scopes_idempotency_keys_per_owner(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient
) -> None:
    key = str(uuid.uuid4())

    mine = await post(client, key)
    theirs = await post(other_client, key, {**BODY, "size_bytes": 7})

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert "idempotent-replayed" not in theirs.headers


async def test_create_image_concurrent_retries_make_one_image(client: httpx.AsyncClient) -> None:
    key = str(uuid.uuid4())

    responses = await asyncio.gather(*(post(client, key) for _ in range(8)))

    assert [r.status_code for r in responses] == [201] * 8
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 7
    assert await count_images(client) == 1


async def test_create_image_concurrent_conflicting_bodies_make_one_image(
    client: httpx.AsyncClient,
) -> None:
    key = str(uuid.uuid4())
    bodies = [{**BODY, "size_bytes": size} for size in range(1, 9)]

    responses = await asyncio.gather(*(post(client, key, body) for body in bodies))

    assert sorted(r.status_code for r in responses) == [201] + [409] * 7
    assert await count_images(client) == 1


async def test_create_image_refuses_unprintable_idempotency_key(
    client: httpx.AsyncClient,
) -> None:
    response = await post(client, "has space")

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert response.json()["errors"][0]["location"] == ["header", "Idempotency-Key"]
