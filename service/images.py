"""Use-cases on images, each scoped to the owner asking: list, delete, reprocess. Creating one
is `service.creation`'s.

Each takes its collaborators (a session or the autocommit engine, an S3 or SQS client, the
settings it reads) explicitly and returns records (`service.models`), never HTTP shapes:
`service.routes` turns them into answers. Foreign errors (botocore's, the database driver's)
are left to the one boundary that maps them (`service.errors`).

An image another owner made is looked up with the asker's owner in the query, so it is simply
not found: callers cannot tell it from a missing one.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.cdn import Cdn
from service.charges import charge_reprocess
from service.config import ApiSettings
from service.errors import (
    DependencyUnavailable,
    ImageNotFound,
    ImageNotUploaded,
)
from service.jobs import reprocess_message
from service.limits import Limits, Rate
from service.models import Image, ImageStatus
from service.pagination import Position, decode_cursor, encode_cursor
from service.storage import (
    ObjectsNotDeleted,
    abort_multipart_upload,
    delete_image_objects,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImagePage:
    images: list[Image]
    next_cursor: str | None


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
    session: AsyncSession,
    s3: S3Client,
    settings: ApiSettings,
    *,
    owner: str,
    image_id: uuid.UUID,
    cdn: Cdn | None = None,
) -> None:
    """Erase the objects (every version), invalidate the CDN's copies, then delete the record,
    under the image row's lock.

    The worker records renditions under the same lock (`worker.records.record_ready`). Either
    it recorded first, and its objects are in the listing we delete; or it waits for us, finds
    no row, and deletes what it wrote itself. Either way nothing is left in S3. If S3 fails, the
    record stays (the session rolls back), so the client's retry finds it and finishes the job.
    """
    locked = (
        await session.execute(
            select(Image.id, Image.multipart_upload_id, Image.multipart_closed_at)
            .where(Image.id == image_id, Image.owner == owner)
            .with_for_update()
        )
    ).one_or_none()
    if locked is None:
        raise ImageNotFound(f"there is no image {image_id}")
    if locked.multipart_upload_id is not None and locked.multipart_closed_at is None:
        # An upload under way: its parts go too, and a part sent later finds no upload.
        await abort_multipart_upload(
            s3,
            bucket=settings.uploads_bucket,
            image_id=image_id,
            upload_id=locked.multipart_upload_id,
        )
    try:
        renditions = await delete_image_objects(
            s3,
            uploads_bucket=settings.uploads_bucket,
            renditions_bucket=settings.renditions_bucket,
            image_id=image_id,
        )
    except ObjectsNotDeleted as exc:
        log.error("delete image_id=%s: S3 kept objects: %s", image_id, exc)
        raise DependencyUnavailable("storage is unavailable; the image is kept, try again") from exc
    if cdn is not None:
        await cdn.invalidate_image(image_id)
    await session.execute(delete(Image).where(Image.id == image_id))
    await session.commit()
    log.info("deleted image_id=%s owner=%s renditions=%d", image_id, owner, renditions)


async def reprocess_image(
    session: AsyncSession,
    sqs: SQSClient,
    settings: ApiSettings,
    *,
    owner: str,
    image_id: uuid.UUID,
    limits: Limits | None = None,
) -> tuple[Image, Rate | None]:
    """Ask the worker to render the original again, unless a render of it is already pending
    or running: then the image is returned as it is and nothing more is queued. The record
    changes when the worker is done.

    The claim is one conditional UPDATE, so of concurrent requests exactly one queues a job. A
    claim older than `reprocess_coalesce_s` no longer counts (its job was lost, or its outcome
    never recorded). If SQS refuses the job, the claim rolls back with the session.

    Only a reprocess that queues a job takes a token of the owner's reprocess rate (returned,
    for its headers); one refused by the rate rolls its claim back."""
    image = await require_image(session, owner=owner, image_id=image_id)
    if image.status == ImageStatus.AWAITING_UPLOAD:
        raise ImageNotUploaded(f"image {image_id} has no original yet: upload it first")
    if image.status == ImageStatus.EXPIRED:
        raise ImageNotUploaded(f"image {image_id} expired before its upload: create it again")
    stale = func.now() - timedelta(seconds=settings.reprocess_coalesce_s)
    claimed = await session.scalar(
        update(Image)
        .where(
            Image.id == image_id,
            # A first render still running counts as pending.
            Image.status.in_([ImageStatus.READY, ImageStatus.FAILED]),
            or_(Image.reprocess_queued_at.is_(None), Image.reprocess_queued_at < stale),
        )
        .values(reprocess_queued_at=func.now())
        .returning(Image.id)
        .execution_options(synchronize_session=False)
    )
    if claimed is None:
        log.info("reprocess coalesced image_id=%s owner=%s", image_id, owner)
        return image, None
    rate = None if limits is None else await charge_reprocess(session, owner=owner, limits=limits)
    await sqs.send_message(QueueUrl=settings.queue_url, MessageBody=reprocess_message(image.id))
    await session.commit()
    log.info("reprocess queued image_id=%s owner=%s", image_id, owner)
    return image, rate
