"""The worker's writes to the image records. Each function is one transaction, and none moves
an image's status backwards: `ready` never returns to `processing` or `failed`.

- a new original: `awaiting_upload` -> `processing` -> `ready` or `failed`;
- a reprocess job: `failed` -> `processing` -> `ready` or `failed`; `ready` stays `ready` while
  its renditions are replaced (and stays `ready`, renditions kept, if the new render fails);
- a redelivered message finds `ready` and leaves it be;
- an image left `processing` longer than any delivery could still be at work on it:
  `processing` -> `failed` (`processing_failed`), see `worker.abandoned`;
- an image never uploaded before its ticket expired: `awaiting_upload` -> `expired`, see
  `worker.sweep`; an original landing for it later is removed, never rendered.

On a versioned bucket the first upload the worker sees pins the original's version
(`original_version_id`, the oldest version S3 holds under the key): that version is the one
rendered, then and on every reprocess, and any other version is a later upload to remove.

The two writes every image makes (`claim_upload`, `record_ready`) run Core statements on the
session's connection, built once but for the claim's UPDATE of what changed: built on every call
and run through the ORM session, they cost 7-8 ms of the worker's CPU per image; this way, 2-3 ms
(bench/README.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal

from sqlalchemy import bindparam, case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.db import LIFT_STATEMENT_TIMEOUT
from service.models import Image, ImageStatus, Rendition

UNFINISHED = (ImageStatus.AWAITING_UPLOAD, ImageStatus.PROCESSING)
# The failure the worker records when it gave up on an image for want of a working S3, database
# or render process, rather than for anything wrong with the image (see worker.handlers).
PROCESSING_FAILED = "processing_failed"


@dataclass(frozen=True)
class Original:
    """What the worker renders: the declared type, the version pinned (None on an unversioned
    bucket: whatever is current), and the token of the image's rendition keys."""

    content_type: str
    version_id: str | None
    rendition_token: str
    # As declared: an original larger than this is refused before it is read.
    size_bytes: int


# What to do with a new upload: render it; nothing (the image is already finished); remove
# it, a later version than the pinned one; remove it, the image is gone (deleted, expired).
UploadVerdict = Literal["render", "finished", "later_version", "gone"]
# What to do with a reprocess job: render; nothing (the image has no original yet, or never
# will: `awaiting_upload`, `expired`); remove its objects, the image is gone (deleted).
ReprocessVerdict = Literal["render", "not_uploaded", "gone"]


@dataclass(frozen=True)
class Placeholder:
    thumbhash: str | None
    dominant_color: str | None


_IMAGE_ID = bindparam("image_id", type_=Image.id.type)
# claim_upload's read, which locks the row until the upload's verdict is written.
LOCK_FOR_CLAIM: Final = (
    select(
        Image.status,
        Image.error_code,
        Image.original_version_id,
        Image.content_type,
        Image.rendition_token,
        Image.size_bytes,
    )
    .where(Image.id == _IMAGE_ID)
    .with_for_update()
)
# record_ready's statements. MARK_READY locks the row (none returned: the image is gone).
MARK_READY: Final = (
    update(Image)
    .where(Image.id == _IMAGE_ID)
    .values(
        status=ImageStatus.READY,
        width=bindparam("width"),
        height=bindparam("height"),
        thumbhash=bindparam("thumbhash"),
        dominant_color=bindparam("dominant_color"),
        error_code=None,
        error_message=None,
        reprocess_queued_at=None,
    )
    .returning(Image.id)
)
RENDITION_KEYS: Final = select(Rendition.key).where(Rendition.image_id == _IMAGE_ID)
DROP_OTHER_RENDITIONS: Final = delete(Rendition).where(
    Rendition.image_id == _IMAGE_ID,
    Rendition.name.not_in(bindparam("names", expanding=True)),
)
_RENDITION_FIELDS: Final = ("key", "width", "height", "format", "size_bytes")
_new_rendition = insert(Rendition)
UPSERT_RENDITION: Final = _new_rendition.on_conflict_do_update(
    index_elements=["image_id", "name"],
    set_={field: _new_rendition.excluded[field] for field in _RENDITION_FIELDS},
)


async def claim_upload(
    sessions: async_sessionmaker[AsyncSession],
    image_id: uuid.UUID,
    *,
    version_id: str | None,
    first_version_id: str | None,
) -> tuple[UploadVerdict, Original | None]:
    """For a new original (S3's `version_id`, None on an unversioned bucket): pin the image's
    original to `first_version_id` if nothing is pinned yet, then say what to do with this
    upload. Only `render` comes with the original to render, and marks the image `processing`.

    An image that failed only because processing gave up is taken up again: that is what a
    redrive from the DLQ is for."""
    async with sessions.begin() as session:
        connection = await session.connection()
        row = (await connection.execute(LOCK_FOR_CLAIM, {"image_id": image_id})).one_or_none()
        if row is None or row.status == ImageStatus.EXPIRED:
            return "gone", None
        changes: dict[str, object] = {}
        pinned = row.original_version_id
        if pinned is None and first_version_id is not None:
            pinned = changes["original_version_id"] = first_version_id
        unfinished = row.status in UNFINISHED or (
            row.status == ImageStatus.FAILED and row.error_code == PROCESSING_FAILED
        )
        verdict: UploadVerdict
        if version_id is not None and pinned is not None and version_id != pinned:
            verdict = "later_version"
        elif not unfinished:
            verdict = "finished"
        else:
            verdict = "render"
            changes["status"] = ImageStatus.PROCESSING
        if changes:  # the pin is kept whatever the verdict
            await connection.execute(update(Image).where(Image.id == image_id).values(changes))
        if verdict != "render":
            return verdict, None
        return "render", Original(row.content_type, pinned, row.rendition_token, row.size_bytes)


async def start_reprocessing(
    sessions: async_sessionmaker[AsyncSession], image_id: uuid.UUID
) -> tuple[ReprocessVerdict, Original | None]:
    """For a reprocess job: a `failed` image goes back to `processing`, a `ready` one stays
    `ready`, and either comes with its pinned original to render. An image never uploaded
    (`awaiting_upload`, `expired`) is left be; `gone`: there is no such image (deleted)."""
    async with sessions.begin() as session:
        row = (
            await session.execute(
                update(Image)
                .where(
                    Image.id == image_id,
                    Image.status.not_in((ImageStatus.AWAITING_UPLOAD, ImageStatus.EXPIRED)),
                )
                .values(
                    status=case(
                        (Image.status == ImageStatus.READY, ImageStatus.READY),
                        else_=ImageStatus.PROCESSING,
                    )
                )
                .returning(
                    Image.content_type,
                    Image.original_version_id,
                    Image.rendition_token,
                    Image.size_bytes,
                )
            )
        ).one_or_none()
        if row is not None:
            return "render", Original(*row)
        # Image ids are never used again: an image missing now is gone for good.
        exists = await session.scalar(select(Image.id).where(Image.id == image_id))
        return ("not_uploaded" if exists else "gone"), None


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
        connection = await session.connection()
        marked = await connection.execute(
            MARK_READY,
            {
                "image_id": image_id,
                "width": width,
                "height": height,
                "thumbhash": placeholder.thumbhash,
                "dominant_color": placeholder.dominant_color,
            },
        )
        if marked.scalar() is None:
            return None
        earlier_keys = set(
            (await connection.execute(RENDITION_KEYS, {"image_id": image_id})).scalars()
        )
        names = [r.name for r in renditions]
        await connection.execute(DROP_OTHER_RENDITIONS, {"image_id": image_id, "names": names})
        rows = [
            {"image_id": image_id, "name": r.name}
            | {field: getattr(r, field) for field in _RENDITION_FIELDS}
            for r in renditions
        ]
        if rows:
            await connection.execute(UPSERT_RENDITION, rows)
        return sorted(earlier_keys - {r.key for r in renditions})


async def fail_abandoned(
    sessions: async_sessionmaker[AsyncSession], *, idle_s: float, message: str
) -> list[uuid.UUID]:
    """Mark `failed` (`processing_failed`) every image that has been `processing` for more than
    `idle_s` seconds; their ids. A redrive or a reprocess takes such an image up again."""
    async with sessions.begin() as session:
        await session.execute(LIFT_STATEMENT_TIMEOUT)
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


async def record_original_missing(
    sessions: async_sessionmaker[AsyncSession], image_id: uuid.UUID, *, message: str
) -> list[str]:
    """Mark an uploaded image whose original is gone `failed` (`original_missing`): it can never
    be rendered again. Its renditions' rows go; their keys, for the caller to erase."""
    async with sessions.begin() as session:
        failed = await session.scalar(
            update(Image)
            .where(
                Image.id == image_id,
                Image.status.not_in((ImageStatus.AWAITING_UPLOAD, ImageStatus.EXPIRED)),
            )
            .values(status=ImageStatus.FAILED, error_code="original_missing", error_message=message)
            .returning(Image.id)
        )
        if failed is None:
            return []
        keys = await session.scalars(
            delete(Rendition).where(Rendition.image_id == image_id).returning(Rendition.key)
        )
        return sorted(set(keys))
