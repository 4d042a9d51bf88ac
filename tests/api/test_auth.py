"""Identity: every image route wants a valid, unrevoked key; health checks want none."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db import create_sessionmaker
from service.keys import generate_key, parse_key, revoke_key
from tests.conftest import KeyMaker, api_client

SOME_ID = uuid.uuid4()
IMAGE_ROUTES = [
    ("POST", "/v1/images"),
    ("GET", "/v1/images"),
    ("GET", f"/v1/images/{SOME_ID}"),
    ("DELETE", f"/v1/images/{SOME_ID}"),
    ("POST", f"/v1/images/{SOME_ID}/reprocess"),
]
BODY = {"filename": "a.jpg", "content_type": "image/jpeg", "size_bytes": 10}


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unauthorized"


@pytest.mark.parametrize(("method", "path"), IMAGE_ROUTES)
async def test_auth_refuses_request_without_key(
    anonymous_client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await anonymous_client.request(method, path, json=BODY)

    assert_unauthorized(response)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer nonsense",
        "Bearer " + generate_key(),  # well formed, never issued
        "Basic dXNlcjpwYXNz",
        "Bearer",
    ],
    ids=["malformed", "unknown", "basic-scheme", "empty"],
)
async def test_auth_refuses_bad_key(
    anonymous_client: httpx.AsyncClient, authorization: str
) -> None:
    response = await anonymous_client.get("/v1/images", headers={"Authorization": authorization})

    assert_unauthorized(response)


async def test_auth_refuses_right_id_with_wrong_secret(
    anonymous_client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    key = parse_key(await make_key("alice"))
    forged = f"pf_{key.key_id}_{parse_key(generate_key()).secret}"

    response = await anonymous_client.get(
        "/v1/images", headers={"Authorization": f"Bearer {forged}"}
    )

    assert_unauthorized(response)


async def test_auth_refuses_revoked_key(
    anonymous_client: httpx.AsyncClient, make_key: KeyMaker, db: AsyncEngine
) -> None:
    key = await make_key("alice")
    headers = {"Authorization": f"Bearer {key}"}
    assert (await anonymous_client.get("/v1/images", headers=headers)).status_code == 200

    assert await revoke_key(create_sessionmaker(db), key_id=parse_key(key).key_id)

    assert_unauthorized(await anonymous_client.get("/v1/images", headers=headers))


@pytest.mark.parametrize(
    "bad_request",
    [
        {"json": {"filename": "a.jpg"}},
        {"json": {**BODY, "content_type": "image/bmp"}},
        {"json": {**BODY, "size_bytes": 10**12}},
        {"json": BODY, "headers": {"Idempotency-Key": "has space"}},
        {"content": b"filename=a.jpg", "headers": {"Content-Type": "text/plain"}},
    ],
    ids=["missing-fields", "unaccepted-type", "too-large", "bad-idempotency-key", "not-json"],
)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer " + generate_key()], ids=["none", "unknown"]
)
async def test_create_refuses_bad_key_before_judging_request(
    anonymous_client: httpx.AsyncClient, authorization: str | None, bad_request: dict[str, Any]
) -> None:
    headers = dict(bad_request.get("headers", {}))
    if authorization:
        headers["Authorization"] = authorization

    response = await anonymous_client.post("/v1/images", **{**bad_request, "headers": headers})

    assert_unauthorized(response)


@pytest.mark.parametrize(
    ("content", "status"),
    [(b"{nope", 422), (b" " * 100_000, 413)],
    ids=["bad-json", "huge-body"],
)
async def test_create_refuses_unreadable_body_whatever_the_key(
    anonymous_client: httpx.AsyncClient, content: bytes, status: int
) -> None:
    # Not JSON at all, or more than any create: judged before the key, since it tells nothing
    # about what a create may declare.
    response = await anonymous_client.post(
        "/v1/images", content=content, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == status, response.text


async def test_create_with_idempotency_key_refuses_revoked_key(
    anonymous_client: httpx.AsyncClient, make_key: KeyMaker, db: AsyncEngine
) -> None:
    key = await make_key("alice")
    assert await revoke_key(create_sessionmaker(db), key_id=parse_key(key).key_id)

    response = await anonymous_client.post(
        "/v1/images",
        json=BODY,
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())},
    )

    assert_unauthorized(response)


async def test_auth_accepts_every_active_key_of_owner(
    client: httpx.AsyncClient, make_key: KeyMaker, app: FastAPI
) -> None:
    created = (await client.post("/v1/images", json=BODY)).json()

    async with api_client(app, await make_key("alice")) as second_key:
        response = await second_key.get(f"/v1/images/{created['id']}")

    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_health_needs_no_key(anonymous_client: httpx.AsyncClient, path: str) -> None:
    response = await anonymous_client.get(path)

    assert response.status_code == 200
