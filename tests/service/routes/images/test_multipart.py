"""Multipart uploads (`service.multipart`): parts signed in batches, listed, completed, aborted,
owner-scoped; the declared size held to; the worker's path unchanged. Against the emulator."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from service.config import ApiSettings, GiB, MiB
from service.db import create_sessionmaker
from service.errors import ImageNotFound
from service.main import create_app
from service.models import Image
from service.multipart import complete_body_bytes, open_upload
from service.routes.images import multipart_uploads
from tests.conftest import OWNER, KeyMaker, api_client, assert_problem
from tests.flow import create_image, wait_for_status, wait_until_finished
from tests.pictures import noise_png
from tests.service.state import all_versions
from worker.metrics import Metrics
from worker.sweep import SweepOptions, sweep_once

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine
    from types_aiobotocore_s3 import S3Client

PART = 5 * MiB  # S3's smallest part


# Between two and three parts of 5 MiB: a 3-part upload.
LARGE_PNG = noise_png(2048, 1800)
# A one-part upload.
DATA = noise_png(64, 64)
MULTIPART = {
    "filename": "a.png",
    "content_type": "image/png",
    "size_bytes": len(DATA),
    "upload_method": "multipart",
}


@pytest.fixture
def api_settings(api_settings: ApiSettings) -> ApiSettings:
    return api_settings.model_copy(
        update={"multipart_part_bytes": PART, "multipart_threshold_bytes": PART}
    )


def parts_of(data: bytes, part_bytes: int) -> list[bytes]:
    return [data[start : start + part_bytes] for start in range(0, len(data), part_bytes)]


def upload_path(created: dict[str, Any]) -> str:
    return f"/v1/images/{created['id']}/multipart/{created['upload']['upload_id']}"


async def send_parts(
    client: httpx.AsyncClient, created: dict[str, Any], data: bytes, numbers: list[int]
) -> dict[int, str]:
    """Sign `numbers` in one batch and PUT each; the ETags S3 answered with."""
    signed = await client.post(f"{upload_path(created)}/parts", json={"part_numbers": numbers})
    assert signed.status_code == 200, signed.text
    chunks = parts_of(data, created["upload"]["part_size"])
    etags = {}
    async with httpx.AsyncClient() as s3:
        for part in signed.json()["parts"]:
            sent = await s3.put(part["url"], content=chunks[part["part_number"] - 1])
            assert sent.status_code == 200, sent.text
            etags[part["part_number"]] = sent.headers["ETag"]
    return etags


async def complete(
    client: httpx.AsyncClient, created: dict[str, Any], etags: dict[int, str]
) -> httpx.Response:
    parts = [{"part_number": n, "etag": etag} for n, etag in sorted(etags.items())]
    return await client.post(f"{upload_path(created)}/complete", json={"parts": parts})


def expire_at_once(settings: ApiSettings) -> SweepOptions:
    """A sweep that expires every image awaiting its upload."""
    return SweepOptions(
        uploads_bucket=settings.uploads_bucket,
        upload_expires_after_s=0,
        idempotency_key_ttl_s=3600,
        every_s=60,
    )


async def create_large(client: httpx.AsyncClient, size_bytes: int) -> dict[str, Any]:
    return await create_image(
        client,
        filename="panorama.png",
        content_type="image/png",
        size_bytes=size_bytes,
        upload_method="multipart",
    )


@pytest.mark.usefixtures("worker")
async def test_multipart_upload_in_three_parts_reaches_ready(client: httpx.AsyncClient) -> None:
    created = await create_large(client, len(LARGE_PNG))
    ticket = created["upload"]
    assert ticket["method"] == "MULTIPART"
    assert (ticket["part_size"], ticket["part_count"]) == (PART, 3)
    assert ticket["key"] == f"originals/{created['id']}"

    etags = await send_parts(client, created, LARGE_PNG, [1, 2])
    # What a resuming client sees: the parts S3 holds, then it sends only the rest.
    listed = (await client.get(f"{upload_path(created)}/parts")).json()["parts"]
    assert [(p["part_number"], p["size_bytes"]) for p in listed] == [(1, PART), (2, PART)]
    etags |= await send_parts(client, created, LARGE_PNG, [3])
    completed = await complete(client, created, etags)

    assert completed.status_code == 200, completed.text
    assert completed.json()["status"] in ("awaiting_upload", "processing", "ready")
    record = await wait_until_finished(client, created["id"], timeout_s=60)
    assert record["status"] == "ready", record
    assert (record["width"], record["height"]) == (2048, 1800)
    # Completed once: the upload id is closed.
    again = await complete(client, created, etags)
    assert (again.status_code, again.json()["code"]) == (404, "upload_not_found")


async def test_multipart_abort_leaves_nothing(
    client: httpx.AsyncClient, s3: S3Client, api_settings: ApiSettings
) -> None:
    created = await create_large(client, len(LARGE_PNG))
    await send_parts(client, created, LARGE_PNG, [1])
    late = (await client.post(f"{upload_path(created)}/parts", json={"part_numbers": [2]})).json()[
        "parts"
    ][0]

    response = await client.delete(upload_path(created))

    assert response.status_code == 204
    uploads = await s3.list_multipart_uploads(Bucket=api_settings.uploads_bucket)
    assert uploads.get("Uploads", []) == []
    assert await all_versions(s3, api_settings) == []
    assert (await client.get(f"/v1/images/{created['id']}")).status_code == 404
    # A part signed before the abort finds no upload.
    async with httpx.AsyncClient() as http:
        sent = await http.put(late["url"], content=parts_of(LARGE_PNG, PART)[1])
    assert sent.status_code == 404
    again = await client.delete(upload_path(created))
    assert (again.status_code, again.json()["code"]) == (404, "image_not_found")


async def test_multipart_routes_refuse_another_owners_upload_as_not_found(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient
) -> None:
    theirs = await create_large(client, len(LARGE_PNG))
    etags = await send_parts(client, theirs, LARGE_PNG, [1])
    mine = await create_large(other_client, len(LARGE_PNG))
    their_upload = theirs["upload"]["upload_id"]
    parts_body = {"part_numbers": [1]}
    complete_body = {"parts": [{"part_number": 1, "etag": etags[1]}]}

    for path, code in (
        (upload_path(theirs), "image_not_found"),  # their image
        (f"/v1/images/{mine['id']}/multipart/{their_upload}", "upload_not_found"),  # on mine
    ):
        answers = [
            await other_client.post(f"{path}/parts", json=parts_body),
            await other_client.get(f"{path}/parts"),
            await other_client.post(f"{path}/complete", json=complete_body),
            await other_client.delete(path),
        ]
        assert [(a.status_code, a.json()["code"]) for a in answers] == [(404, code)] * 4
        assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
    # Their upload is untouched.
    listed = (await client.get(f"{upload_path(theirs)}/parts")).json()["parts"]
    assert [p["part_number"] for p in listed] == [1]


@pytest.mark.usefixtures("worker")
async def test_multipart_completed_over_its_declaration_fails_never_ready(
    client: httpx.AsyncClient, s3: S3Client, api_settings: ApiSettings
) -> None:
    """An upload completed by other means than the API's check (S3 itself would refuse a
    signed part of another length): the worker refuses the original before reading it."""
    declared = len(LARGE_PNG) - 1
    created = await create_large(client, declared)
    key, upload_id = created["upload"]["key"], created["upload"]["upload_id"]
    parts = []
    for number, chunk in enumerate(parts_of(LARGE_PNG, PART), start=1):
        sent = await s3.upload_part(
            Bucket=api_settings.uploads_bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=chunk,
        )
        parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    # The API's complete lists the parts and refuses: the last one is a byte too long.
    refused = await complete(client, created, {p["PartNumber"]: p["ETag"] for p in parts})
    assert (refused.status_code, refused.json()["code"]) == (409, "upload_incomplete")
    await s3.complete_multipart_upload(
        Bucket=api_settings.uploads_bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
    )

    record = await wait_for_status(client, created["id"], "ready", "failed", timeout_s=60)
    assert record["status"] == "failed", record
    assert record["error"] == {
        "code": "size_exceeds_declaration",
        "message": "the original is larger than the size declared for it",
    }


async def test_multipart_part_url_refuses_another_length(client: httpx.AsyncClient) -> None:
    created = await create_large(client, len(LARGE_PNG))
    signed = await client.post(f"{upload_path(created)}/parts", json={"part_numbers": [1]})
    [part] = signed.json()["parts"]
    assert part["size_bytes"] == PART

    async with httpx.AsyncClient() as http:
        sent = await http.put(part["url"], content=LARGE_PNG[: PART + 1])

    assert sent.status_code == 403, sent.text
    listed = (await client.get(f"{upload_path(created)}/parts")).json()["parts"]
    assert listed == []


async def test_multipart_refuses_parts_past_the_last_and_an_incomplete_upload(
    client: httpx.AsyncClient,
) -> None:
    created = await create_large(client, len(LARGE_PNG))

    past = await client.post(f"{upload_path(created)}/parts", json={"part_numbers": [3, 4]})
    assert (past.status_code, past.json()["code"]) == (422, "invalid_part_number")
    etags = await send_parts(client, created, LARGE_PNG, [1, 3])
    missing = await complete(client, created, etags)
    assert (missing.status_code, missing.json()["code"]) == (409, "upload_incomplete")
    assert "part 2" in missing.json()["detail"]
    etags |= await send_parts(client, created, LARGE_PNG, [2])
    etags[2] = '"0123456789abcdef0123456789abcdef"'
    wrong = await complete(client, created, etags)
    assert (wrong.status_code, wrong.json()["code"]) == (409, "upload_incomplete")


async def test_complete_takes_the_part_list_of_the_largest_upload_allowed(
    api_settings: ApiSettings, make_key: KeyMaker
) -> None:
    settings = api_settings.model_copy(update={"max_upload_bytes": 4 * GiB})
    application = create_app(settings)
    async with (
        application.router.lifespan_context(application),
        api_client(application, await make_key(OWNER)) as http,
    ):
        largest = await create_large(http, settings.max_upload_bytes)
        count = largest["upload"]["part_count"]
        # Each ETag at its longest, spelled with a space after every separator.
        etags = dict.fromkeys(range(1, count + 1), '"' + "f" * 126 + '"')
        over_a_megabyte = await complete(http, largest, etags)
        too_long = json.dumps({"parts": [{"part_number": 1, "etag": "f"}]})
        refused = await http.post(
            f"{upload_path(largest)}/complete",
            content=too_long + " " * complete_body_bytes(settings),
            headers={"Content-Type": "application/json"},
        )

    assert count == 820
    # Read, and answered for what S3 holds (nothing yet), not refused for its length.
    assert_problem(over_a_megabyte, 409, "upload_incomplete")
    assert_problem(refused, 413, "payload_too_large")


async def test_create_picks_multipart_for_large_uploads_unless_told(
    client: httpx.AsyncClient,
) -> None:
    async def method(size_bytes: int, upload_method: str | None = None) -> str:
        body: dict[str, Any] = {
            "filename": "a.png",
            "content_type": "image/png",
            "size_bytes": size_bytes,
        }
        if upload_method:
            body["upload_method"] = upload_method
        response = await client.post("/v1/images", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["upload"]["method"])

    assert await method(PART) == "MULTIPART"
    assert await method(PART - 1) == "POST"
    assert await method(PART, "post") == "POST"
    assert await method(PART, "put") == "PUT"
    assert await method(100, "multipart") == "MULTIPART"


async def test_create_replay_answers_with_the_same_multipart_upload(
    client: httpx.AsyncClient,
) -> None:
    body = {"filename": "a.png", "content_type": "image/png", "size_bytes": 3 * PART}
    headers = {"Idempotency-Key": "multipart-replay"}
    first = await client.post("/v1/images", json=body, headers=headers)
    second = await client.post("/v1/images", json=body, headers=headers)

    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json()["upload"] == first.json()["upload"]


async def test_replay_that_opens_an_upload_for_an_image_deleted_meanwhile_leaves_none(
    client: httpx.AsyncClient, app: FastAPI, s3: S3Client, api_settings: ApiSettings
) -> None:
    created = (await client.post("/v1/images", json=MULTIPART)).json()
    resources = app.state.resources
    async with resources.sessions() as session:
        image = await session.get(Image, uuid.UUID(created["id"]))
    assert image is not None
    # As a replay read the row before the first request had recorded its upload...
    image.multipart_upload_id = image.multipart_part_bytes = None
    # ...and the image was deleted while the replay asked S3 for another.
    assert (await client.delete(f"/v1/images/{created['id']}")).status_code == 204

    with pytest.raises(ImageNotFound):
        await open_upload(resources.statements, multipart_uploads(resources), image)

    uploads = await s3.list_multipart_uploads(Bucket=api_settings.uploads_bucket)
    assert uploads.get("Uploads", []) == []


async def test_create_replay_after_the_upload_closed_opens_no_other(
    client: httpx.AsyncClient, db: AsyncEngine, s3: S3Client, api_settings: ApiSettings
) -> None:
    expiring = (
        await client.post("/v1/images", json=MULTIPART, headers={"Idempotency-Key": "x"})
    ).json()
    await sweep_once(create_sessionmaker(db), s3, Metrics(), expire_at_once(api_settings))
    headers = {"Idempotency-Key": "multipart-replay"}
    completed = (await client.post("/v1/images", json=MULTIPART, headers=headers)).json()
    assert (
        await complete(client, completed, await send_parts(client, completed, DATA, [1]))
    ).is_success

    replays = [
        await client.post("/v1/images", json=MULTIPART, headers=headers),
        await client.post("/v1/images", json=MULTIPART, headers={"Idempotency-Key": "x"}),
    ]

    assert [r.headers["Idempotent-Replayed"] for r in replays] == ["true", "true"]
    # The same answer as the first time: the upload it opened, now closed.
    assert [r.json()["upload"] for r in replays] == [completed["upload"], expiring["upload"]]
    assert (await s3.list_multipart_uploads(Bucket=api_settings.uploads_bucket)).get(
        "Uploads", []
    ) == []
    for closed in (completed, expiring):
        parts = await client.get(f"{upload_path(closed)}/parts")
        assert_problem(parts, 404, "upload_not_found")
        assert_problem(await client.delete(upload_path(closed)), 404, "upload_not_found")
    assert len(await all_versions(s3, api_settings)) == 1


@pytest.mark.parametrize("headers", [{}, {"Idempotency-Key": "retried"}])
async def test_create_that_cannot_open_its_upload_leaves_no_image(
    client: httpx.AsyncClient,
    db: AsyncEngine,
    s3: S3Client,
    api_settings: ApiSettings,
    headers: dict[str, str],
) -> None:
    await s3.delete_bucket(Bucket=api_settings.uploads_bucket)  # S3 refuses to open it

    refused = await client.post("/v1/images", json=MULTIPART, headers=headers)

    assert_problem(refused, 503, "dependency_unavailable")
    assert (await client.get("/v1/images")).json()["items"] == []
    async with db.connect() as connection:
        usage = await connection.execute(
            text("SELECT awaiting_upload, stored_bytes FROM owner_usage WHERE owner = :owner"),
            {"owner": OWNER},
        )
        assert usage.one() == (0, 0)
    await s3.create_bucket(Bucket=api_settings.uploads_bucket)
    retried = await client.post("/v1/images", json=MULTIPART, headers=headers)
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers


async def test_sweep_aborts_the_multipart_upload_of_an_expired_image(
    client: httpx.AsyncClient, db: AsyncEngine, s3: S3Client, api_settings: ApiSettings
) -> None:
    created = await create_large(client, len(LARGE_PNG))
    await send_parts(client, created, LARGE_PNG, [1])

    expired = await sweep_once(create_sessionmaker(db), s3, Metrics(), expire_at_once(api_settings))

    assert [str(image_id) for image_id in expired] == [created["id"]]
    uploads = await s3.list_multipart_uploads(Bucket=api_settings.uploads_bucket)
    assert uploads.get("Uploads", []) == []
    record = (await client.get(f"/v1/images/{created['id']}")).json()
    assert record["status"] == "expired"
    gone = await client.get(f"{upload_path(created)}/parts")
    assert (gone.status_code, gone.json()["code"]) == (404, "upload_not_found")
