"""`POST /v1/images`: what may be declared, and the two kinds of upload ticket S3 enforces."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.body_limit import MAX_BODY_BYTES as MAX_JSON_BODY_BYTES
from service.config import ApiSettings
from service.content_types import ACCEPTED_CONTENT_TYPES
from tests.conftest import TESTDATA, KeyMaker, assert_problem
from tests.flow import create_image, upload_put
from tests.service.state import list_keys

HOPPER_PNG = (TESTDATA / "good" / "hopper.png").read_bytes()


@pytest.mark.parametrize("content_type", sorted(ACCEPTED_CONTENT_TYPES))
async def test_create_image_accepts_every_accepted_type(
    client: httpx.AsyncClient, content_type: str
) -> None:
    created = await create_image(client, filename="a", content_type=content_type, size_bytes=1000)

    assert created["status"] == "awaiting_upload"
    assert created["content_type"] == content_type
    assert created["upload"]["fields"]["Content-Type"] == content_type


@pytest.mark.parametrize(
    "content_type", ["image/bmp", "image/svg+xml", "text/html", "application/octet-stream", ""]
)
async def test_create_image_refuses_unaccepted_type_before_issuing_url(
    client: httpx.AsyncClient, content_type: str
) -> None:
    response = await client.post(
        "/v1/images", json={"filename": "a", "content_type": content_type, "size_bytes": 10}
    )

    problem = assert_problem(response, 422, "unsupported_content_type")
    assert "image/jpeg" in problem["detail"]  # says what would be accepted
    assert "upload" not in problem
    assert (await client.get("/v1/images")).json()["items"] == []


async def test_create_image_refuses_file_over_size_limit(
    client: httpx.AsyncClient, api_settings: ApiSettings
) -> None:
    limit = api_settings.max_upload_bytes
    assert (await create_image(client, filename="a", content_type="image/png", size_bytes=limit))[
        "size_bytes"
    ] == limit

    response = await client.post(
        "/v1/images",
        json={"filename": "a", "content_type": "image/png", "size_bytes": limit + 1},
    )

    problem = assert_problem(response, 422, "file_too_large")
    assert str(limit) in problem["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"content_type": "image/png", "size_bytes": 10},
        {"filename": "", "content_type": "image/png", "size_bytes": 10},
        {"filename": "a\x00b.png", "content_type": "image/png", "size_bytes": 10},
        {"filename": "a", "content_type": "image/png", "size_bytes": 0},
        {"filename": "a", "content_type": "image/png", "size_bytes": "ten"},
        {"filename": "a", "content_type": "image/png", "size_bytes": 10, "owner": "bob"},
        {"filename": "a", "content_type": "image/png", "size_bytes": 10, "upload_method": "ftp"},
        ["not", "an", "object"],
    ],
    ids=[
        "missing",
        "empty-name",
        "nul-in-name",
        "zero-size",
        "size-type",
        "extra",
        "method",
        "array",
    ],
)
async def test_create_image_refuses_malformed_body_as_problem(
    client: httpx.AsyncClient, body: Any
) -> None:
    response = await client.post("/v1/images", json=body)

    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"]
    assert all(error["location"][0] == "body" for error in problem["errors"])


async def test_create_image_refuses_lone_surrogate_in_name(client: httpx.AsyncClient) -> None:
    # Valid JSON, but no UTF-8 string: PostgreSQL could never store it.
    body = b'{"filename": "a\\ud800.png", "content_type": "image/png", "size_bytes": 10}'

    response = await client.post(
        "/v1/images", content=body, headers={"Content-Type": "application/json"}
    )

    assert_problem(response, 422, "validation_error")


async def test_create_image_refuses_invalid_json_as_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/images", content=b"{nope", headers={"Content-Type": "application/json"}
    )

    assert_problem(response, 422, "validation_error")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_create_image_refuses_body_not_sent_as_json(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps({"filename": "a.png", "content_type": "image/png", "size_bytes": 10})

    response = await client.post("/v1/images", content=body, headers=headers)

    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["location"] == ["body"]


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/x+json"]
)
async def test_create_image_accepts_every_spelling_of_json(
    client: httpx.AsyncClient, content_type: str
) -> None:
    body = json.dumps({"filename": "a.png", "content_type": "image/png", "size_bytes": 10})

    response = await client.post("/v1/images", content=body, headers={"Content-Type": content_type})

    assert response.status_code == 201, response.text


async def test_create_image_refuses_body_larger_than_any_create(
    client: httpx.AsyncClient,
) -> None:
    name = "a" * 200
    small = json.dumps({"filename": name, "content_type": "image/png", "size_bytes": 10})
    huge = small.replace(name, name + " " * MAX_JSON_BODY_BYTES)  # valid JSON, mostly spaces

    response = await client.post(
        "/v1/images", content=huge, headers={"Content-Type": "application/json"}
    )

    assert_problem(response, 413, "payload_too_large")
    accepted = await client.post(
        "/v1/images", content=small, headers={"Content-Type": "application/json"}
    )
    assert accepted.status_code == 201


async def test_create_image_answers_400_when_body_never_arrives(
    app: FastAPI, make_key: KeyMaker
) -> None:
    key = await make_key("alice")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/images",
        "raw_path": b"/v1/images",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"picforge"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", b"100"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, Any]] = []

    async def client_gone() -> dict[str, Any]:
        # What the server tells the app when the client hangs up before its body is sent.
        return {"type": "http.disconnect"}

    async def record(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, client_gone, record)

    assert sent[0]["status"] == 400
    problem = json.loads(sent[1]["body"])
    assert problem["code"] == "malformed_request"
    assert problem["detail"] == "There was an error parsing the body"  # as openapi.json says


async def test_create_image_put_ticket_signs_type_and_length(client: httpx.AsyncClient) -> None:
    created = await create_image(
        client, filename="a.png", content_type="image/png", size_bytes=123, upload_method="put"
    )
    ticket = created["upload"]

    assert ticket["method"] == "PUT"
    assert ticket["headers"] == {
        "Content-Type": "image/png",
        "Content-Length": "123",
        "If-None-Match": "*",
    }
    signed = httpx.URL(ticket["url"]).params["X-Amz-SignedHeaders"].split(";")
    assert {"content-type", "content-length", "if-none-match"} <= set(signed)
    assert httpx.URL(ticket["url"]).path.endswith(f"/originals/{created['id']}")
    assert "fields" not in ticket


async def test_put_ticket_uploads_declared_bytes(
    client: httpx.AsyncClient, s3: Any, api_settings: ApiSettings
) -> None:
    created = await create_image(
        client,
        filename="a.png",
        content_type="image/png",
        size_bytes=len(HOPPER_PNG),
        upload_method="put",
    )

    response = await upload_put(created["upload"], HOPPER_PNG)

    assert response.status_code == 200, response.text
    stored = await s3.get_object(
        Bucket=api_settings.uploads_bucket, Key=f"originals/{created['id']}"
    )
    assert stored["ContentType"] == "image/png"
    async with stored["Body"] as body:
        assert await body.read() == HOPPER_PNG


async def test_s3_refuses_put_of_another_content_type(
    client: httpx.AsyncClient, s3: Any, api_settings: ApiSettings
) -> None:
    created = await create_image(
        client,
        filename="a.png",
        content_type="image/png",
        size_bytes=len(HOPPER_PNG),
        upload_method="put",
    )
    headers = {**created["upload"]["headers"], "Content-Type": "text/html"}

    response = await upload_put(created["upload"], HOPPER_PNG, headers=headers)

    assert response.status_code == 403, response.text
    assert "SignatureDoesNotMatch" in response.text
    assert await list_keys(s3, api_settings.uploads_bucket) == []


async def test_s3_refuses_put_of_longer_body(
    client: httpx.AsyncClient, s3: Any, api_settings: ApiSettings
) -> None:
    created = await create_image(
        client,
        filename="a.png",
        content_type="image/png",
        size_bytes=len(HOPPER_PNG) - 100,
        upload_method="put",
    )
    headers = {**created["upload"]["headers"], "Content-Length": str(len(HOPPER_PNG))}

    response = await upload_put(created["upload"], HOPPER_PNG, headers=headers)

    assert response.status_code in (400, 403), response.text
    assert await list_keys(s3, api_settings.uploads_bucket) == []
