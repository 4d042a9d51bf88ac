"""The worker's writes to the image records. Each function is one transaction, and none moves
an image's status backwards: `ready` never returns to `processing` or `failed`.

- a new original: `awaiting_upload` -> `processing` -> `ready` or `failed`;
- a reprocess job: `failed` -> `processing` -> `ready` or `failed`; `ready` stays `ready` while
  its renditions are replaced (and stays `ready`, renditions kept, if the new render fails);
- a redelivered message finds `ready` and leaves it be;
- an image left `processing` longer than any delivery could still be at work on it:
  `processing` -> `failed` (`processing_failed`), see `worker.abandoned`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.models import Image, ImageStatus, Rendition

UNFINISHED = (ImageStatus.AWAITING_UPLOAD, ImageStatus.PROCESSING)
# The failure the worker records when it gave up on an image for want of a working S3, database
# or render process, rather than for anything wrong with the image (see worker.handlers).
PROCESSING_FAILED = "processing_failed"


@dataclass(frozen=True)
class Placeholder:
    thumbhash: str | None
    dominant_color: str | None


async def start_processing(
    sessions: async_sessionmaker[AsyncSession], image_id: uuid.UUID
) -> str | None:
    """For a new original: mark the image `processing`; its declared content type, or None when
    there is nothing to do (unknown, deleted, or already finished). An image that failed only
    because processing gave up is taken up again: that is what a redrive from the DLQ is for."""
    async with sessions.begin() as session:
        declared: str | None = await session.scalar(
            update(Image)
            .where(
                Image.id == image_id,
                or_(
                    Image.status.in_(UNFINISHED),
                    (Image.status == ImageStatus.FAILED) & (Image.error_code == PROCESSING_FAILED),
                ),
            )
            .values(status=ImageStatus.PROCESSING)
            .returning(Image.content_type)
        )
        return declared


async def start_reprocessing(
    sessions: async_sessionmaker[AsyncSession], image_id: uuid.UUID
) -> str | None:
    """For a reprocess job: a `failed` image goes back to `processing`, a `ready` one stays
    `ready`. Its declared content type, or None for an unknown image or one never uploaded."""
    async with sessions.begin() as session:
        declared: str | None = await session.scalar(
            update(Image)
            .where(Image.id == image_id, Image.status != ImageStatus.AWAITING_UPLOAD)
            .values(
                status=case(
                    (Image.status == ImageStatus.READY, ImageStatus.READY),
                    else_=ImageStatus.PROCESSING,
                )
            )
            .returning(Image.content_type)
        )
        return declared


async def record_ready(
    sessions: async_sessionmaker[AsyncSession],
    image_id: uuid.UUID,
    *,
    width: int,
    height: int,
    placeholder: Placeholder,
    renditions: Sequence[Rendition],
) -> list[str] | None:
    """Store the renditions (replacing any earlier set) and mark the image `ready`.

    Returns the keys the image's renditions had and no longer have (presets removed or
    changed), for the caller to delete once this has committed; or None when the image is gone
    (deleted meanwhile): the caller then owns the objects it wrote. A second render of the same
    image (a redelivery racing the first) rewrites the same rows: the row lock orders them."""
    async with sessions.begin() as session:
        locked = await session.scalar(
            select(Image.id).where(Image.id == image_id).with_for_update()
        )
        if locked is None:
            return None
        earlier_keys = set(
            await session.scalars(select(Rendition.key).where(Rendition.image_id == image_id))
        )
        names = [r.name for r in renditions]
        await session.execute(
            delete(Rendition).where(Rendition.image_id == image_id, Rendition.name.not_in(names))
        )
        for rendition in renditions:
            values = {
                "image_id": image_id,
                "name": rendition.name,
                "key": rendition.key,
                "width": rendition.width,
                "height": rendition.height,
                "format": rendition.format,
                "size_bytes": rendition.size_bytes,
            }
            await session.execute(
                insert(Rendition)
                .values(values)
                .on_conflict_do_update(index_elements=["image_id", "name"], set_=values)
            )
        await session.execute(
            update(Image)
            .where(Image.id == image_id)
            .values(
                status=ImageStatus.READY,
                width=width,
                height=height,
                thumbhash=placeholder.thumbhash,
                dominant_color=placeholder.dominant_color,
                error_code=None,
                error_message=None,
                reprocess_queued_at=None,
            )
        )
        return sorted(earlier_keys - {r.key for r in renditions})


async def fail_abandoned(
    sessions: async_sessionmaker[AsyncSession], *, idle_s: float, message: str
) -> list[uuid.UUID]:
    """Mark `failed` (`processing_failed`) every image that has been `processing` for more than
    `idle_s` seconds; their ids. A redrive or a reprocess takes such an image up again."""
    async with sessions.begin() as session:
        failed = await session.scalars(
            update(Image)
            .where(
                Image.status == ImageStatus.PROCESSING,
                Image.updated_at < func.now() - timedelta(seconds=idle_s),
            )
            .values(status=ImageStatus.FAILED, error_code=PROCESSING_FAILED, error_message=message)
            .returning(Image.id)
        )
        return list(failed)


async def record_failure(
    sessions: async_sessionmaker[AsyncSession], image_id: uuid.UUID, *, code: str, message: str
) -> bool:
    """Mark an unfinished image `failed`; False if it is gone or finished (a `ready` image keeps
    its renditions: a failed reprocess does not take them away)."""
    async with sessions.begin() as session:
        failed = await session.scalar(
            update(Image)
            .where(Image.id == image_id, Image.status.in_(UNFINISHED))
            .values(status=ImageStatus.FAILED, error_code=code, error_message=message)
            .returning(Image.id)
        )
        # Its render is over either way: the API may queue another reprocess.
        await session.execute(
            update(Image).where(Image.id == image_id).values(reprocess_queued_at=None)
        )
        return failed is not None
