"""`POST /v1/images`: what may be declared, and the two kinds of upload ticket S3 enforces."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.config import ApiSettings
from service.content_types import ACCEPTED_CONTENT_TYPES
from tests.api.state import list_keys
from tests.conftest import TESTDATA
from tests.flow import create_image, upload_put

HOPPER_PNG = (TESTDATA / "good" / "hopper.png").read_bytes()


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["type"] == f"urn:picforge:error:{code}"
    assert problem["title"]
    assert problem["detail"]
    return problem


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


async def test_create_image_put_ticket_signs_type_and_length(client: httpx.AsyncClient) -> None:
    created = await create_image(
        client, filename="a.png", content_type="image/png", size_bytes=123, upload_method="put"
    )
    ticket = created["upload"]

    assert ticket["method"] == "PUT"
    assert ticket["headers"] == {"Content-Type": "image/png", "Content-Length": "123"}
    signed = httpx.URL(ticket["url"]).params["X-Amz-SignedHeaders"].split(";")
    assert {"content-type", "content-length"} <= set(signed)
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
