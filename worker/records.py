"""The worker's writes to the image records. Each function is one transaction, and none moves
an image's status backwards: a redelivered message finds `ready` and leaves it be."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.models import Image, ImageStatus, Rendition

UNFINISHED = (ImageStatus.AWAITING_UPLOAD, ImageStatus.PROCESSING)


async def start_processing(
    sessions: async_sessionmaker[AsyncSession], image_id: uuid.UUID
) -> str | None:
    """Mark an unfinished image `processing`; its declared content type, or None when there is
    nothing to do (unknown, deleted, or already finished)."""
    async with sessions.begin() as session:
        declared = await session.scalar(
            update(Image)
            .where(Image.id == image_id, Image.status.in_(UNFINISHED))
            .values(status=ImageStatus.PROCESSING)
            .returning(Image.content_type)
        )
        return declared


async def record_ready(
    sessions: async_sessionmaker[AsyncSession],
    image_id: uuid.UUID,
    *,
    width: int,
    height: int,
    renditions: Sequence[Rendition],
) -> bool:
    """Store the renditions and mark the image `ready`; False if the image was deleted or
    finished meanwhile (the caller then owns the objects it wrote)."""
    async with sessions.begin() as session:
        locked = await session.scalar(
            select(Image.id)
            .where(Image.id == image_id, Image.status == ImageStatus.PROCESSING)
            .with_for_update()
        )
        if locked is None:
            return False
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
                error_code=None,
                error_message=None,
            )
        )
        return True


async def record_failure(
    sessions: async_sessionmaker[AsyncSession], image_id: uuid.UUID, *, code: str, message: str
) -> None:
    async with sessions.begin() as session:
        await session.execute(
            update(Image)
            .where(Image.id == image_id, Image.status.in_(UNFINISHED))
            .values(status=ImageStatus.FAILED, error_code=code, error_message=message)
        )
