"""Use-cases on images, each scoped to the owner asking. The only module of the API that commits.

An image another owner made is looked up with the asker's owner in the query, so it is simply
not found: callers cannot tell it from a missing one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from service.config import ApiSettings
from service.content_types import ACCEPTED_CONTENT_TYPES
from service.errors import (
    DependencyUnavailable,
    FileTooLarge,
    IdempotencyConflict,
    ImageNotFound,
    ImageNotUploaded,
    Unauthorized,
    UnsupportedContentType,
)
from service.inserts import ImageInserts, NewImage
from service.jobs import reprocess_message
from service.keys import UNKNOWN_KEY, ParsedKey, require_owner
from service.models import IdempotentCreate, Image, ImageStatus
from service.pagination import Position, decode_cursor, encode_cursor
from service.resources import Resources
from service.schemas import ImageCreate, ImageOut
from service.storage import (
    ObjectsNotDeleted,
    UploadTicket,
    delete_image_objects,
    original_key,
    presign_download,
    presign_put,
    presign_upload,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CreatedImage:
    image: ImageOut
    ticket: UploadTicket
    # True when an earlier request with the same Idempotency-Key made the image.
    replayed: bool


@dataclass(frozen=True)
class ImagePage:
    images: list[Image]
    next_cursor: str | None


def check_upload_allowed(request: ImageCreate, settings: ApiSettings) -> None:
    if request.content_type not in ACCEPTED_CONTENT_TYPES:
        accepted = ", ".join(sorted(ACCEPTED_CONTENT_TYPES))
        raise UnsupportedContentType(
            f"{request.content_type!r} is not an accepted image type; accepted: {accepted}"
        )
    if request.size_bytes > settings.max_upload_bytes:
        raise FileTooLarge(
            f"{request.size_bytes} bytes is over the limit of {settings.max_upload_bytes} bytes"
        )


def request_fingerprint(request: ImageCreate) -> bytes:
    """The same body, however its JSON was spelled (key order, defaults), hashes the same."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).digest()


async def create_image(
    resources: Resources,
    *,
    key: ParsedKey,
    request: ImageCreate,
    idempotency_key: str | None = None,
) -> CreatedImage:
    """A new image for the owner of `key`, and the ticket to upload it with.

    Unauthorized for an unknown or revoked key. The upload is checked first, before anything
    is looked up, so a refused upload has asked nothing of the database.
    """
    check_upload_allowed(request, resources.settings)
    if idempotency_key is None:
        image = await insert_image(resources.inserts, key=key, request=request)
        replayed = False
    else:
        owner = await require_owner(resources.statements, key)
        async with resources.sessions() as session:
            await forget_expired_idempotency_key(
                session,
                owner=owner,
                key=idempotency_key,
                ttl_s=resources.settings.idempotency_key_ttl_s,
            )
            record, replayed = await create_image_idempotently(
                session, owner=owner, request=request, idempotency_key=idempotency_key
            )
        urls = await rendition_urls(resources.presigner, resources.settings, record)
        image = ImageOut.from_record(record, urls)
    ticket = await presign_image_upload(resources, image.id, request)
    return CreatedImage(image=image, ticket=ticket, replayed=replayed)


async def insert_image(inserts: ImageInserts, *, key: ParsedKey, request: ImageCreate) -> ImageOut:
    """A plain create: one row, inserted along with whatever other creates arrive with it."""
    image_id = uuid.uuid4()
    inserted = await inserts.insert(
        NewImage(
            id=image_id,
            key=key,
            filename=request.filename,
            content_type=request.content_type,
            size_bytes=request.size_bytes,
        )
    )
    if inserted is None:
        raise Unauthorized(UNKNOWN_KEY)
    return ImageOut(
        id=image_id,
        status=ImageStatus.AWAITING_UPLOAD,
        filename=request.filename,
        content_type=request.content_type,
        size_bytes=request.size_bytes,
        width=None,
        height=None,
        created_at=inserted.created_at,
        updated_at=inserted.updated_at,
        error=None,
        placeholder=None,
        renditions=[],
    )


def new_image(*, owner: str, request: ImageCreate) -> Image:
    return Image(
        id=uuid.uuid4(),
        owner=owner,
        status=ImageStatus.AWAITING_UPLOAD,
        filename=request.filename,
        content_type=request.content_type,
        size_bytes=request.size_bytes,
        renditions=[],
    )


async def create_image_idempotently(
    session: AsyncSession, *, owner: str, request: ImageCreate, idempotency_key: str
) -> tuple[Image, bool]:
    """The image this key made, new or made earlier, and whether it was made earlier."""
    image = new_image(owner=owner, request=request)
    session.add(image)
    fingerprint = request_fingerprint(request)
    await session.flush()
    # A concurrent request holding the same key makes this wait for its commit, then do
    # nothing: the primary key, not a read-then-write, decides which request made the image.
    claimed = await session.scalar(
        insert(IdempotentCreate)
        .values(owner=owner, key=idempotency_key, request_sha256=fingerprint, image_id=image.id)
        .on_conflict_do_nothing(index_elements=["owner", "key"])
        .returning(IdempotentCreate.image_id)
    )
    if claimed is not None:
        await session.commit()
        return image, False
    await session.rollback()
    earlier = await find_idempotent_image(
        session, owner=owner, key=idempotency_key, fingerprint=fingerprint
    )
    return earlier, True


async def forget_expired_idempotency_key(
    session: AsyncSession, *, owner: str, key: str, ttl_s: int
) -> None:
    """A key is remembered `ttl_s` seconds: past that, its request makes a new image, even
    before the worker's sweep (`worker.sweep`) deletes the old key. In the create's own
    transaction, so a create that then finds the key taken undoes nothing it should not."""
    await session.execute(
        delete(IdempotentCreate).where(
            IdempotentCreate.owner == owner,
            IdempotentCreate.key == key,
            IdempotentCreate.created_at < func.now() - timedelta(seconds=ttl_s),
        )
    )


async def find_idempotent_image(
    session: AsyncSession, *, owner: str, key: str, fingerprint: bytes
) -> Image:
    found = (
        await session.execute(
            select(IdempotentCreate.request_sha256, Image)
            .join(Image, Image.id == IdempotentCreate.image_id)
            .where(IdempotentCreate.owner == owner, IdempotentCreate.key == key)
        )
    ).one_or_none()
    if found is None:
        # The image this key made was deleted between our insert and this read.
        raise ImageNotFound("the image this Idempotency-Key created has been deleted")
    if found.request_sha256 != fingerprint:
        raise IdempotencyConflict(
            "this Idempotency-Key was used with a different request body; use a new key for a "
            "new image"
        )
    image: Image = found.Image
    return image


async def presign_image_upload(
    resources: Resources, image_id: uuid.UUID, request: ImageCreate
) -> UploadTicket:
    settings = resources.settings
    if request.upload_method == "put":
        return await presign_put(
            resources.presigner,
            bucket=settings.uploads_bucket,
            key=original_key(image_id),
            content_type=request.content_type,
            size_bytes=request.size_bytes,
            expires_s=settings.presign_expires_s,
        )
    return await presign_upload(
        resources.upload_signer,
        bucket=settings.uploads_bucket,
        key=original_key(image_id),
        content_type=request.content_type,
        size_bytes=request.size_bytes,
        expires_s=settings.presign_expires_s,
    )


async def require_image(session: AsyncSession, *, owner: str, image_id: uuid.UUID) -> Image:
    image = await session.scalar(select(Image).where(Image.id == image_id, Image.owner == owner))
    if image is None:
        raise ImageNotFound(f"there is no image {image_id}")
    return image


async def list_images(
    session: AsyncSession,
    *,
    owner: str,
    limit: int,
    cursor: str | None = None,
    status: ImageStatus | None = None,
) -> ImagePage:
    query = select(Image).where(Image.owner == owner)
    if status is not None:
        query = query.where(Image.status == status)
    if cursor is not None:
        after = decode_cursor(cursor)
        query = query.where(tuple_(Image.created_at, Image.id) < (after.created_at, after.image_id))
    # One more than asked for says whether another page follows, without counting.
    query = query.order_by(Image.created_at.desc(), Image.id.desc()).limit(limit + 1)
    images = list(await session.scalars(query))
    if len(images) <= limit:
        return ImagePage(images=images, next_cursor=None)
    last = images[limit - 1]
    return ImagePage(
        images=images[:limit], next_cursor=encode_cursor(Position(last.created_at, last.id))
    )


async def delete_image(
    session: AsyncSession, s3: S3Client, settings: ApiSettings, *, owner: str, image_id: uuid.UUID
) -> None:
    """Delete the objects, then the record, under the image row's lock.

    The worker records renditions under the same lock (`worker.records.record_ready`). Either
    it recorded first, and its objects are in the listing we delete; or it waits for us, finds
    no row, and deletes what it wrote itself. Either way nothing is left in S3. If S3 fails, the
    record stays, so the client's retry finds it and finishes the job.
    """
    locked = await session.scalar(
        select(Image.id).where(Image.id == image_id, Image.owner == owner).with_for_update()
    )
    if locked is None:
        raise ImageNotFound(f"there is no image {image_id}")
    try:
        renditions = await delete_image_objects(
            s3,
            uploads_bucket=settings.uploads_bucket,
            renditions_bucket=settings.renditions_bucket,
            image_id=image_id,
        )
    except (BotoCoreError, ClientError, ObjectsNotDeleted) as exc:
        log.error("delete image_id=%s: S3 failed: %r", image_id, exc)
        raise DependencyUnavailable("storage is unavailable; the image is kept, try again") from exc
    await session.execute(delete(Image).where(Image.id == image_id))
    await session.commit()
    log.info("deleted image_id=%s owner=%s renditions=%d", image_id, owner, renditions)


async def reprocess_image(
    session: AsyncSession, sqs: SQSClient, settings: ApiSettings, *, owner: str, image_id: uuid.UUID
) -> Image:
    """Ask the worker to render the original again; the record changes when it does."""
    image = await require_image(session, owner=owner, image_id=image_id)
    if image.status == ImageStatus.AWAITING_UPLOAD:
        raise ImageNotUploaded(f"image {image_id} has no original yet: upload it first")
    if image.status == ImageStatus.EXPIRED:
        raise ImageNotUploaded(f"image {image_id} expired before its upload: create it again")
    try:
        await sqs.send_message(QueueUrl=settings.queue_url, MessageBody=reprocess_message(image.id))
    except (BotoCoreError, ClientError) as exc:
        log.error("reprocess image_id=%s: SQS failed: %r", image_id, exc)
        raise DependencyUnavailable("the job queue is unavailable; try again") from exc
    log.info("reprocess queued image_id=%s owner=%s", image_id, owner)
    return image


async def rendition_urls(
    presigner: S3Client, settings: ApiSettings, image: Image
) -> dict[str, str]:
    if settings.public_base_url:
        base = settings.public_base_url.rstrip("/")
        return {r.name: f"{base}/{r.key}" for r in image.renditions}
    return {
        r.name: await presign_download(
            presigner,
            bucket=settings.renditions_bucket,
            key=r.key,
            expires_s=settings.rendition_url_expires_s,
        )
        for r in image.renditions
    }
