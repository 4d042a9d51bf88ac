"""Keyset pagination over an owner's images, newest first.

A page ends at an image; the cursor is that image's `(created_at, id)`: `created_at` in
microseconds since the epoch (16 digits, zero-padded), a `-`, and the id's 32 hex digits. The
next page is everything strictly older in that order. Unlike an offset, the position does not
move when images are created or deleted meanwhile: no image that existed when the listing began
is repeated or skipped.

Every string of `CURSOR_PATTERN` is a position, so the OpenAPI document's pattern admits
exactly the cursors the API can answer (with a page, maybe empty), and nothing else.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

CURSOR_PATTERN = "^[0-9]{16}-[0-9a-f]{32}$"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Position:
    created_at: datetime
    image_id: uuid.UUID


def encode_cursor(position: Position) -> str:
    microseconds = (position.created_at - EPOCH) // timedelta(microseconds=1)
    return f"{microseconds:016d}-{position.image_id.hex}"


def decode_cursor(cursor: str) -> Position:
    """The position of a cursor of `CURSOR_PATTERN` (the route's parameter admits no other);
    ValueError for anything else."""
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise ValueError(f"not a cursor: {cursor!r}")
    microseconds, _, image_id = cursor.partition("-")
    return Position(EPOCH + timedelta(microseconds=int(microseconds)), uuid.UUID(image_id))
