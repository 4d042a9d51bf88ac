"""Group commit for plain creates: requests that arrive together share one INSERT.

A plain create is one row, and its round trip to PostgreSQL (the write, the wake-up, the
commit's flush of the WAL) costs the API process more than the rest of the request together.
So `ImageInserts` keeps at most one INSERT in flight: rows that arrive meanwhile wait for it to
finish, then go together in the next. One request alone still goes at once, in one round trip;
twenty that arrive at once share one (tests/api/test_inserts.py; the gain: bench/README.md).

The API key rides in the same statement: a row is inserted only if its key is active, so a
create needs no other query (PostgreSQL compares the secret's SHA-256: see `service.keys`).

A batch is atomic. If it fails because PostgreSQL is unreachable, every request in it fails
with `DependencyUnavailable` and nothing was inserted, so each can retry. If it fails for any
other reason, its rows are tried one by one, so a row PostgreSQL refuses fails only its own
request.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime

from service.db import CONNECTION_LOST, StatementPool
from service.errors import DependencyUnavailable
from service.keys import ParsedKey, hash_secret
from service.models import ImageStatus

MAX_BATCH_ROWS = 256  # bounds one statement's size; more rows wait for the next

INSERT_IMAGES = f"""
INSERT INTO images (id, owner, status, filename, content_type, size_bytes)
SELECT new.id, api_keys.owner, '{ImageStatus.AWAITING_UPLOAD.value}', new.filename,
       new.content_type, new.size_bytes
FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::bigint[])
    AS new (id, key_id, secret_sha256, filename, content_type, size_bytes)
JOIN api_keys ON api_keys.id = new.key_id
    AND api_keys.secret_sha256 = new.secret_sha256
    AND api_keys.revoked_at IS NULL
RETURNING id, owner, created_at, updated_at
"""


@dataclass(frozen=True)
class NewImage:
    """A row to insert, for the owner of `key` if the key is active."""

    id: uuid.UUID
    key: ParsedKey
    filename: str
    content_type: str
    size_bytes: int


@dataclass(frozen=True)
class InsertedImage:
    owner: str
    created_at: datetime
    updated_at: datetime


Pending = tuple[NewImage, "asyncio.Future[InsertedImage | None]"]


class ImageInserts:
    def __init__(self, statements: StatementPool) -> None:
        self._statements = statements
        self._waiting: list[Pending] = []
        self._flushing: asyncio.Task[None] | None = None

    async def insert(self, image: NewImage) -> InsertedImage | None:
        """The inserted row, or None when the key is unknown or revoked (nothing inserted)."""
        inserted: asyncio.Future[InsertedImage | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((image, inserted))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush())
        # A request cancelled now leaves its row in the batch, inserted or not with the others.
        return await inserted

    async def close(self) -> None:
        """Wait for the rows already handed in (the server stops taking requests first)."""
        if self._flushing is not None:
            await self._flushing

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[:MAX_BATCH_ROWS]
                del self._waiting[:MAX_BATCH_ROWS]
                try:
                    await self._insert_batch(batch)
                finally:
                    # Whatever stopped the batch (this task cancelled at shutdown), no request
                    # is left waiting for it.
                    for _, inserted in batch:
                        if not inserted.done():
                            inserted.set_exception(DependencyUnavailable("the API is stopping"))
        finally:
            self._flushing = None

    async def _insert_batch(self, batch: list[Pending]) -> None:
        try:
            rows = await self._insert_rows([image for image, _ in batch])
        except CONNECTION_LOST as exc:
            for _, inserted in batch:
                error = DependencyUnavailable("the database is unavailable; try again")
                error.__cause__ = exc
                reject(inserted, error)
            return
        except Exception as exc:
            if len(batch) == 1:
                reject(batch[0][1], exc)
                return
            # One row PostgreSQL refuses must not fail the rest: try each on its own.
            for pending in batch:
                await self._insert_batch([pending])
            return
        for image, inserted in batch:
            if not inserted.done():  # its request was cancelled
                inserted.set_result(rows.get(image.id))

    async def _insert_rows(self, images: list[NewImage]) -> dict[uuid.UUID, InsertedImage]:
        rows = await self._statements.fetch(
            INSERT_IMAGES,
            [image.id for image in images],
            [image.key.key_id for image in images],
            [hash_secret(image.key.secret) for image in images],
            [image.filename for image in images],
            [image.content_type for image in images],
            [image.size_bytes for image in images],
        )
        return {
            row["id"]: InsertedImage(
                owner=row["owner"], created_at=row["created_at"], updated_at=row["updated_at"]
            )
            for row in rows
        }


def reject(inserted: asyncio.Future[InsertedImage | None], error: BaseException) -> None:
    if not inserted.done():  # its request was cancelled
        inserted.set_exception(error)
