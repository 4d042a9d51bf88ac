"""What a client does: declare an upload, send the bytes to S3 with the ticket, poll the record."""

from __future__ import annotations

from typing import Any

import httpx

from tests.polling import eventually

FINISHED = ("ready", "failed")


async def create_image(
    client: httpx.AsyncClient,
    *,
    filename: str,
    content_type: str,
    size_bytes: int,
    upload_method: str = "post",
) -> dict[str, Any]:
    response = await client.post(
        "/v1/images",
        json={
            "filename": filename,
            "content_type": content_type,
            "size_bytes": size_bytes,
            "upload_method": upload_method,
        },
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def upload(ticket: dict[str, Any], data: bytes, *, content_type: str) -> httpx.Response:
    """A browser's form POST straight to S3: the ticket's fields, then the file."""
    async with httpx.AsyncClient() as s3:
        return await s3.post(
            ticket["url"],
            data=ticket["fields"],
            files={"file": ("upload", data, content_type)},
        )


async def upload_put(
    ticket: dict[str, Any], data: bytes, *, headers: dict[str, str] | None = None
) -> httpx.Response:
    """An app's PUT straight to S3: the bytes as the body, with the ticket's headers (or
    others, to try S3's refusal)."""
    async with httpx.AsyncClient() as s3:
        return await s3.put(ticket["url"], content=data, headers=headers or ticket["headers"])


async def upload_image(
    client: httpx.AsyncClient,
    data: bytes,
    *,
    filename: str,
    content_type: str,
    upload_method: str = "post",
) -> dict[str, Any]:
    created = await create_image(
        client,
        filename=filename,
        content_type=content_type,
        size_bytes=len(data),
        upload_method=upload_method,
    )
    if upload_method == "put":
        response = await upload_put(created["upload"], data)
        assert response.status_code == 200, response.text
    else:
        response = await upload(created["upload"], data, content_type=content_type)
        assert response.status_code == 204, response.text
    return created


async def wait_for_status(
    client: httpx.AsyncClient, image_id: str, *statuses: str, timeout_s: float = 30
) -> dict[str, Any]:
    """The image's record once its status is one of `statuses`."""

    async def record_in_status() -> dict[str, Any] | None:
        response = await client.get(f"/v1/images/{image_id}")
        assert response.status_code == 200, response.text
        record: dict[str, Any] = response.json()
        return record if record["status"] in statuses else None

    record: dict[str, Any] = await eventually(
        record_in_status, timeout_s=timeout_s, what=f"image {image_id} to be {statuses}"
    )
    return record


async def wait_until_finished(
    client: httpx.AsyncClient, image_id: str, *, timeout_s: float = 30
) -> dict[str, Any]:
    return await wait_for_status(client, image_id, *FINISHED, timeout_s=timeout_s)


async def fetch(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    return response
