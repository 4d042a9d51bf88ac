"""Idempotent creates: one image per owner and `Idempotency-Key`, however often the request
is sent, and the same answer each time.

The key's row (`service.models.IdempotentCreate`) is claimed in the create's own transaction,
by its primary key, so of two concurrent requests with one key exactly one makes the image and
the other answers with it. A key is remembered for its time to live; the worker's sweep
(`worker.sweep`) deletes it after.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.ext.asyncio import AsyncSession

from service.charges import charge_create
from service.errors import IdempotencyConflict, ImageNotFound, TooManyRequests
from service.limits import Limits, Rate
from service.models import IdempotentCreate, Image


async def create_image_idempotently(
    session: AsyncSession,
    *,
    image: Image,
    fingerprint: bytes,
    idempotency_key: str,
    ttl_s: int,
    limits: Limits | None = None,
) -> tuple[Image, bool, Rate | None]:
    """`image` (not yet inserted) if this key is new, else the image the key made earlier;
    whether it was made earlier; and the owner's creates limit. `fingerprint` is the request's
    (`service.creation.upload_fingerprint`): a key used again with another request is a
    conflict; a key older than `ttl_s` is no key. A replay takes no token (the rollback gives
    it back), and is answered even when the owner is out of them."""
    owner = image.owner
    rate = None
    if limits is not None:
        try:
            rate = await charge_create(
                session, owner=owner, limits=limits, size_bytes=image.size_bytes
            )
        except TooManyRequests as refusal:
            # A key that made an image earlier is a replay, and costs nothing: answer it.
            await session.rollback()
            try:
                earlier = await find_idempotent_image(
                    session, owner=owner, key=idempotency_key, fingerprint=fingerprint, ttl_s=ttl_s
                )
            except ImageNotFound:
                raise refusal from None
            return earlier, True, None
    session.add(image)
    await session.flush()
    # A concurrent request holding the same key makes this wait for its commit, then do
    # nothing: the primary key, not a read-then-write, decides which request made the image.
    claimed = await session.scalar(
        upsert(IdempotentCreate)
        .values(owner=owner, key=idempotency_key, request_sha256=fingerprint, image_id=image.id)
        .on_conflict_do_nothing(index_elements=["owner", "key"])
        .returning(IdempotentCreate.image_id)
    )
    if claimed is not None:
        await session.commit()
        return image, False, rate
    await session.rollback()
    earlier = await find_idempotent_image(
        session, owner=owner, key=idempotency_key, fingerprint=fingerprint, ttl_s=ttl_s
    )
    return earlier, True, None


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
    session: AsyncSession, *, owner: str, key: str, fingerprint: bytes, ttl_s: int
) -> Image:
    """The image `key` made, unless it is older than `ttl_s`: a refused create rolls back
    `forget_expired_idempotency_key`'s delete, and an expired key must not answer it."""
    found = (
        await session.execute(
            select(IdempotentCreate.request_sha256, Image)
            .join(Image, Image.id == IdempotentCreate.image_id)
            .where(
                IdempotentCreate.owner == owner,
                IdempotentCreate.key == key,
                IdempotentCreate.created_at >= func.now() - timedelta(seconds=ttl_s),
            )
        )
    ).one_or_none()
    if found is None:
        # The image this key made was deleted between our insert and this read, or the key
        # expired.
        raise ImageNotFound("the image this Idempotency-Key created has been deleted")
    if found.request_sha256 != fingerprint:
        raise IdempotencyConflict(
            "this Idempotency-Key was used with a different request body; use a new key for a "
            "new image"
        )
    image: Image = found.Image
    return image
