"""Nothing lingers: images never uploaded expire, and Idempotency-Keys are forgotten.

An image still `awaiting_upload` once its ticket has expired, plus a grace period for an upload
S3 accepted at the last second and has not yet announced, will never be uploaded: it becomes
`expired`, and anything that landed under its original's key is erased (an upload arriving
later still is removed by the worker when its event comes, see `worker.handlers`). The record
stays, so its client learns what happened, until it is deleted. A multipart upload it had open
is aborted, so S3 drops its parts (the bucket's lifecycle rule is the backstop, a day on).
Idempotency-Keys older than
their time to live are deleted: a request with one then makes a new image.

Each look is one statement, atomic, so any number of workers may sweep at once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import case, delete, func, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from service.db import LIFT_STATEMENT_TIMEOUT
from service.models import IdempotentCreate, Image, ImageStatus
from service.storage import abort_multipart_upload, erase_original
from worker.metrics import Metrics
from worker.periodic import log_failure

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepOptions:
    uploads_bucket: str
    # Seconds after its creation an image still awaiting its upload expires.
    upload_expires_after_s: float
    idempotency_key_ttl_s: float
    every_s: float


async def expire_unuploaded(
    sessions: async_sessionmaker[AsyncSession], *, older_than_s: float
) -> list[tuple[uuid.UUID, str | None]]:
    """Mark `expired` every image `awaiting_upload` created more than `older_than_s` ago, and
    close its multipart upload; each with the upload id it had open (None: none open)."""
    # The row as it was: RETURNING sees the updated row, whose upload is already closed.
    before = aliased(Image, name="before")
    async with sessions.begin() as session:
        await session.execute(LIFT_STATEMENT_TIMEOUT)
        expired = await session.execute(
            update(Image)
            .where(
                Image.id == before.id,
                Image.status == ImageStatus.AWAITING_UPLOAD,
                Image.created_at < func.now() - timedelta(seconds=older_than_s),
            )
            .values(
                status=ImageStatus.EXPIRED,
                multipart_closed_at=func.coalesce(before.multipart_closed_at, func.now()),
            )
            .returning(
                Image.id,
                case((before.multipart_closed_at.is_(None), before.multipart_upload_id)),
            )
        )
        return [(image_id, upload_id) for image_id, upload_id in expired]


async def forget_idempotency_keys(
    sessions: async_sessionmaker[AsyncSession], *, older_than_s: float
) -> int:
    async with sessions.begin() as session:
        await session.execute(LIFT_STATEMENT_TIMEOUT)
        forgotten = await session.scalars(
            delete(IdempotentCreate)
            .where(IdempotentCreate.created_at < func.now() - timedelta(seconds=older_than_s))
            .returning(IdempotentCreate.key)
        )
        return len(list(forgotten))


async def sweep_once(
    sessions: async_sessionmaker[AsyncSession],
    s3: S3Client,
    metrics: Metrics,
    options: SweepOptions,
) -> list[uuid.UUID]:
    """One sweep; the images it expired."""
    expired = await expire_unuploaded(sessions, older_than_s=options.upload_expires_after_s)
    for image_id, upload_id in expired:
        if upload_id is not None:
            await abort_multipart_upload(
                s3, bucket=options.uploads_bucket, image_id=image_id, upload_id=upload_id
            )
            metrics.swept("multipart_uploads")
        erased = await erase_original(s3, bucket=options.uploads_bucket, image_id=image_id)
        log.info(
            "image_id=%s expired: never uploaded; %d versions erased, multipart upload %s",
            image_id,
            erased,
            "aborted" if upload_id else "none",
        )
        metrics.swept("expired_images")
    forgotten = await forget_idempotency_keys(sessions, older_than_s=options.idempotency_key_ttl_s)
    if forgotten:
        log.info(
            "forgot %d idempotency keys older than %.0f s", forgotten, options.idempotency_key_ttl_s
        )
        metrics.swept("idempotency_keys", forgotten)
    return [image_id for image_id, _ in expired]


@asynccontextmanager
async def sweeping(
    sessions: async_sessionmaker[AsyncSession],
    s3: S3Client,
    metrics: Metrics,
    options: SweepOptions,
) -> AsyncIterator[None]:
    """Sweep every `options.every_s` seconds (the first time at once) while the block runs."""

    async def sweep_forever() -> None:
        while True:
            try:
                await sweep_once(sessions, s3, metrics, options)
            except Exception as error:  # the next sweep tries again
                log_failure(log, "sweep failed", error)
            await asyncio.sleep(options.every_s)

    task = asyncio.create_task(sweep_forever())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])
