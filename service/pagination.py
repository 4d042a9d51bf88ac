"""Keyset pagination over an owner's images, newest first.

A page ends at an image; the cursor is that image's `(created_at, id)`, base64url-encoded so
clients treat it as opaque. The next page is everything strictly older in that order. Unlike an
offset, the position does not move when images are created or deleted meanwhile: no image that
existed when the listing began is repeated or skipped.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime

from service.errors import InvalidCursor

SEPARATOR = "|"
NOT_OURS = "the cursor is not one this API issued; list again without one"


@dataclass(frozen=True)
class Position:
    created_at: datetime
    image_id: uuid.UUID


def encode_cursor(position: Position) -> str:
    raw = f"{position.created_at.isoformat()}{SEPARATOR}{position.image_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, image_id = raw.split(SEPARATOR)
        position = Position(datetime.fromisoformat(created_at), uuid.UUID(image_id))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor(NOT_OURS) from None
    if position.created_at.tzinfo is None:
        raise InvalidCursor(NOT_OURS)
    return position
