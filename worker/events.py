"""S3 event notifications, as they arrive in SQS message bodies, turned into typed events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


class NotAnS3Event(ValueError):
    """The message is not an S3 notification we understand."""


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str
    size: int | None


def parse_message_body(body: str) -> list[ObjectCreated]:
    """The objects a message announces; empty for the `s3:TestEvent` S3 sends when a
    notification is configured."""
    try:
        document: Any = json.loads(body)
    except json.JSONDecodeError as exc:
        raise NotAnS3Event(f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise NotAnS3Event("not a JSON object")
    if document.get("Event") == "s3:TestEvent":
        return []
    records = document.get("Records")
    if not isinstance(records, list):
        raise NotAnS3Event("no Records list")
    return [_object_created(record) for record in records if _is_object_created(record)]


def _is_object_created(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and record.get("eventSource") == "aws:s3"
        and str(record.get("eventName", "")).startswith("ObjectCreated:")
    )


def _object_created(record: dict[str, Any]) -> ObjectCreated:
    try:
        s3 = record["s3"]
        size = s3["object"].get("size")
        return ObjectCreated(
            bucket=s3["bucket"]["name"],
            # Keys arrive URL-encoded, with spaces as '+'.
            key=unquote_plus(s3["object"]["key"]),
            size=size if isinstance(size, int) else None,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise NotAnS3Event(f"malformed S3 record: {exc!r}") from exc
