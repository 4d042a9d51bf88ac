"""Multipart uploads: a large original sent to S3 in parts, each part by its own pre-signed URL.

The API opens the upload itself (`CreateMultipartUpload`, with the declared type) when the
image is created, and keeps its upload id on the image. Then, all owner-scoped like every
route (another owner's image or upload id is simply not found):

    sign_parts      pre-signed UploadPart URLs, a batch at a time
    list_parts      the parts S3 holds: what a client resumes from
    complete_upload the parts checked against the declaration, then CompleteMultipartUpload
    abort_upload    AbortMultipartUpload, and the image is deleted: nothing is left

A multipart upload has no POST policy, so the declared size is enforced three times over:
each part URL signs its `Content-Length` (every part is `part_bytes`, the last one the rest:
S3 refuses a part of any other length, and a part number past the last); `complete_upload`
lists the parts S3 holds and refuses to complete unless they are exactly those parts, and
completes with `MpuObjectSize` (S3 refuses a total other than the declaration); and the worker
fails an original larger than its declaration (`size_exceeds_declaration`) before reading it.
The type is the one the API gave `CreateMultipartUpload`, and the worker checks the bytes.

Completing raises the same `s3:ObjectCreated:*` event as any upload: the worker's path is
unchanged. A use-case module: like `service.images`, it commits.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from service.errors import ImageNotFound, InvalidPartNumber, UploadIncomplete, UploadNotFound
from service.models import Image, ImageStatus
from service.storage import abort_multipart_upload, original_key

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

    from service.config import ApiSettings

log = logging.getLogger(__name__)

# S3's own limit on the parts of one upload.
MAX_PARTS = 10_000
# The JSON of one part in `complete`'s body at its longest (`CompletedPart`): a five-digit
# part number and a 128-character ETag, quotes escaped, with room for indentation.
COMPLETED_PART_JSON_BYTES = 200


@dataclass(frozen=True)
class MultipartTicket:
    method: Literal["MULTIPART"]
    upload_id: str
    key: str
    part_bytes: int
    part_count: int
    expires_at: datetime


@dataclass(frozen=True)
class SignedPart:
    part_number: int
    url: str
    size_bytes: int


@dataclass(frozen=True)
class StoredPart:
    part_number: int
    size_bytes: int
    etag: str


@dataclass(frozen=True)
class MultipartUploads:
    """What the multipart use-cases talk to: `s3` makes the calls only the API makes (create,
    list, complete, abort); `presigner` signs the part URLs clients send bytes to."""

    s3: S3Client
    presigner: S3Client
    bucket: str
    part_bytes: int
    expires_s: int


def part_bytes_for(size_bytes: int, part_bytes: int) -> int:
    """The configured part size, or larger when the upload would need more than S3's 10,000."""
    smallest = -(-size_bytes // MAX_PARTS)
    return max(part_bytes, smallest)


def part_count(size_bytes: int, part_bytes: int) -> int:
    return max(1, -(-size_bytes // part_bytes))


def complete_body_bytes(settings: ApiSettings) -> int:
    """The body `complete` may need: the part list of the largest upload allowed."""
    largest = settings.max_upload_bytes
    parts = part_count(largest, part_bytes_for(largest, settings.multipart_part_bytes))
    return parts * COMPLETED_PART_JSON_BYTES


def part_size(number: int, *, size_bytes: int, part_bytes: int) -> int:
    """The exact length of part `number` (1-based) of an upload of `size_bytes`."""
    return min(part_bytes, size_bytes - (number - 1) * part_bytes)


def ticket_for(image: Image, uploads: MultipartUploads) -> MultipartTicket:
    assert image.multipart_upload_id is not None and image.multipart_part_bytes is not None
    return MultipartTicket(
        method="MULTIPART",
        upload_id=image.multipart_upload_id,
        key=original_key(image.id),
        part_bytes=image.multipart_part_bytes,
        part_count=part_count(image.size_bytes, image.multipart_part_bytes),
        expires_at=image.created_at + timedelta(seconds=uploads.expires_s),
    )


async def open_upload(
    statements: AsyncEngine, uploads: MultipartUploads, image: Image
) -> MultipartTicket:
    """The image's multipart upload, opened now unless an earlier request opened it: an
    idempotent replay answers with that one, open or closed. Of two concurrent replays, the
    one whose UPDATE lands first keeps its upload; the other aborts its own and answers with
    the first one's; if the image was deleted meanwhile, the replay aborts its own and answers
    `image_not_found`.

    An image whose upload S3 will not open could never be uploaded: it is deleted, so it holds
    none of the owner's quota and a retry (with its Idempotency-Key or not) starts afresh. If
    the database fails too, the sweep expires it."""
    if image.multipart_upload_id is not None:
        return ticket_for(image, uploads)
    if image.multipart_part_bytes is not None or image.status != ImageStatus.AWAITING_UPLOAD:
        # Closed before migration 0011 kept upload ids, or never opened (its create's S3 call
        # and clean-up both failed) and past its upload: none to answer with, none to open.
        raise UploadNotFound(f"the multipart upload of image {image.id} is closed")
    try:
        created = await uploads.s3.create_multipart_upload(
            Bucket=uploads.bucket, Key=original_key(image.id), ContentType=image.content_type
        )
    except Exception:
        async with statements.connect() as connection:
            await connection.execute(
                delete(Image).where(Image.id == image.id, Image.multipart_upload_id.is_(None))
            )
        raise
    upload_id: str | None = created["UploadId"]
    part_bytes: int | None = part_bytes_for(image.size_bytes, uploads.part_bytes)
    async with statements.connect() as connection:
        assert upload_id is not None
        claimed = (
            await connection.execute(
                update(Image)
                .where(Image.id == image.id, Image.multipart_upload_id.is_(None))
                .values(multipart_upload_id=upload_id, multipart_part_bytes=part_bytes)
                .returning(Image.id)
            )
        ).one_or_none()
        if claimed is None:
            await abort_multipart_upload(
                uploads.s3, bucket=uploads.bucket, image_id=image.id, upload_id=upload_id
            )
            kept = (
                await connection.execute(
                    select(Image.multipart_upload_id, Image.multipart_part_bytes).where(
                        Image.id == image.id
                    )
                )
            ).one_or_none()
            if kept is None:
                # Deleted meanwhile (a DELETE, or its first request's failed open).
                raise ImageNotFound(f"image {image.id} was deleted")
            upload_id, part_bytes = kept
    image.multipart_upload_id, image.multipart_part_bytes = upload_id, part_bytes
    log.info(
        "multipart opened image_id=%s parts=%d", image.id, ticket_for(image, uploads).part_count
    )
    return ticket_for(image, uploads)


async def require_upload(
    session: AsyncSession,
    *,
    owner: str,
    image_id: uuid.UUID,
    upload_id: str,
    for_update: bool = False,
) -> Image:
    """The owner's image whose open multipart upload is `upload_id`."""
    query = select(Image).where(Image.id == image_id, Image.owner == owner)
    image = await session.scalar(query.with_for_update() if for_update else query)
    if image is None:
        raise ImageNotFound(f"there is no image {image_id}")
    if (
        image.multipart_upload_id != upload_id
        or image.multipart_part_bytes is None
        or image.multipart_closed_at is not None
        or image.status != ImageStatus.AWAITING_UPLOAD
    ):
        raise UploadNotFound(f"image {image_id} has no open multipart upload {upload_id}")
    return image


async def sign_parts(
    session: AsyncSession,
    uploads: MultipartUploads,
    *,
    owner: str,
    image_id: uuid.UUID,
    upload_id: str,
    part_numbers: list[int],
) -> tuple[list[SignedPart], datetime]:
    """A pre-signed UploadPart URL for each part number, each signing the part's exact length."""
    image = await require_upload(session, owner=owner, image_id=image_id, upload_id=upload_id)
    assert image.multipart_part_bytes is not None
    count = part_count(image.size_bytes, image.multipart_part_bytes)
    outside = sorted({n for n in part_numbers if not 1 <= n <= count})
    if outside:
        raise InvalidPartNumber(
            f"this upload has parts 1 to {count}; there is no part {outside[0]}"
        )
    expires_at = datetime.now(UTC) + timedelta(seconds=uploads.expires_s)
    signed = []
    for number in part_numbers:
        length = part_size(
            number, size_bytes=image.size_bytes, part_bytes=image.multipart_part_bytes
        )
        url: str = await uploads.presigner.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": uploads.bucket,
                "Key": original_key(image_id),
                "UploadId": upload_id,
                "PartNumber": number,
                "ContentLength": length,
            },
            ExpiresIn=uploads.expires_s,
        )
        signed.append(SignedPart(part_number=number, url=url, size_bytes=length))
    return signed, expires_at


async def stored_parts(uploads: MultipartUploads, image: Image) -> list[StoredPart]:
    assert image.multipart_upload_id is not None
    parts: list[StoredPart] = []
    paginator = uploads.s3.get_paginator("list_parts")
    async for page in paginator.paginate(
        Bucket=uploads.bucket, Key=original_key(image.id), UploadId=image.multipart_upload_id
    ):
        parts.extend(
            StoredPart(part_number=p["PartNumber"], size_bytes=p["Size"], etag=p["ETag"])
            for p in page.get("Parts", [])
        )
    return parts


async def list_parts(
    session: AsyncSession,
    uploads: MultipartUploads,
    *,
    owner: str,
    image_id: uuid.UUID,
    upload_id: str,
) -> list[StoredPart]:
    image = await require_upload(session, owner=owner, image_id=image_id, upload_id=upload_id)
    return await stored_parts(uploads, image)


def check_parts(image: Image, stored: list[StoredPart], claimed: dict[int, str]) -> None:
    """Refuse to complete unless S3 holds exactly the declared upload's parts, each of its
    exact size, and they are the parts (by ETag) the client says it sent."""
    assert image.multipart_part_bytes is not None
    count = part_count(image.size_bytes, image.multipart_part_bytes)
    held = {part.part_number: part for part in stored}
    missing = [n for n in range(1, count + 1) if n not in held]
    if missing:
        raise UploadIncomplete(f"S3 holds no part {missing[0]} of this upload's {count} parts")
    for number, part in held.items():
        expected = part_size(
            number, size_bytes=image.size_bytes, part_bytes=image.multipart_part_bytes
        )
        if part.size_bytes != expected:
            raise UploadIncomplete(
                f"part {number} is {part.size_bytes} bytes; the declaration makes it {expected}"
            )
    if sorted(claimed) != sorted(held) or any(
        claimed[n].strip('"') != held[n].etag.strip('"') for n in held
    ):
        raise UploadIncomplete("the parts named are not the parts S3 holds: list the parts")


async def complete_upload(
    session: AsyncSession,
    uploads: MultipartUploads,
    *,
    owner: str,
    image_id: uuid.UUID,
    upload_id: str,
    parts: dict[int, str],
) -> Image:
    """Check the parts against the declaration, then have S3 assemble the original. The image
    stays `awaiting_upload` until the worker takes the event S3 raises."""
    image = await require_upload(
        session, owner=owner, image_id=image_id, upload_id=upload_id, for_update=True
    )
    stored = await stored_parts(uploads, image)
    check_parts(image, stored, parts)
    completed: list[CompletedPartTypeDef] = [
        {"PartNumber": part.part_number, "ETag": part.etag}
        for part in sorted(stored, key=lambda p: p.part_number)
    ]
    await uploads.s3.complete_multipart_upload(
        Bucket=uploads.bucket,
        Key=original_key(image_id),
        UploadId=upload_id,
        MultipartUpload={"Parts": completed},
        # S3 refuses to assemble any other total.
        MpuObjectSize=image.size_bytes,
    )
    await session.execute(
        update(Image)
        .where(Image.id == image_id)
        .values(multipart_closed_at=func.now())
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    await session.refresh(image)
    log.info("multipart completed image_id=%s parts=%d", image_id, len(stored))
    return image


async def abort_upload(
    session: AsyncSession,
    uploads: MultipartUploads,
    *,
    owner: str,
    image_id: uuid.UUID,
    upload_id: str,
) -> None:
    """Give the upload up: S3 drops every part, and the image, which can now never be
    uploaded, is deleted."""
    await require_upload(
        session, owner=owner, image_id=image_id, upload_id=upload_id, for_update=True
    )
    await abort_multipart_upload(
        uploads.s3, bucket=uploads.bucket, image_id=image_id, upload_id=upload_id
    )
    await session.execute(delete(Image).where(Image.id == image_id))
    await session.commit()
    log.info("multipart aborted image_id=%s owner=%s: image deleted", image_id, owner)
