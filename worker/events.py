"""What a message on the worker's queue asks for, turned into typed events.

Two senders share the queue: S3, whose notifications announce new originals, and the API, whose
`picforge.reprocess` jobs (`service.jobs`) ask for an image's original to be rendered again.
Anything else raises `UnrecognizedMessage`: the consumer logs it and discards it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from service.jobs import REPROCESS


class UnrecognizedMessage(ValueError):
    """Neither an S3 notification nor a picforge job we understand."""


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str
    size: int | None
    # The object version S3 stored; None on an unversioned bucket.
    version_id: str | None = None


@dataclass(frozen=True)
class ReprocessRequested:
    image_id: uuid.UUID


Event = ObjectCreated | ReprocessRequested


def parse_message_body(body: str) -> list[Event]:
    """The events a message carries; empty for the `s3:TestEvent` S3 sends when a notification
    is configured, and for S3 records other than object creations."""
    try:
        document: Any = json.loads(body)
    except (json.JSONDecodeError, RecursionError) as exc:  # the latter: nested too deep
        raise UnrecognizedMessage(f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise UnrecognizedMessage("not a JSON object")
    if "type" in document:
        return [_picforge_job(document)]
    if document.get("Event") == "s3:TestEvent":
        return []
    records = document.get("Records")
    if not isinstance(records, list):
        raise UnrecognizedMessage("no Records list")
    return [_object_created(record) for record in records if _is_object_created(record)]


def _picforge_job(document: dict[str, Any]) -> ReprocessRequested:
    if document["type"] != REPROCESS:
        raise UnrecognizedMessage(f"unknown job type {document['type']!r}")
    try:
        return ReprocessRequested(image_id=uuid.UUID(str(document["image_id"])))
    except (KeyError, ValueError) as exc:
        raise UnrecognizedMessage(f"malformed {REPROCESS} job: {exc!r}") from exc


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
        version_id = s3["object"].get("versionId")
        bucket, key = s3["bucket"]["name"], s3["object"]["key"]
    except (KeyError, TypeError, AttributeError) as exc:
        raise UnrecognizedMessage(f"malformed S3 record: {exc!r}") from exc
    if not isinstance(bucket, str) or not isinstance(key, str):
        raise UnrecognizedMessage("malformed S3 record: bucket or key is not a string")
    # Keys arrive URL-encoded, with spaces as '+'.
    return ObjectCreated(
        bucket=bucket,
        key=unquote_plus(key),
        size=size if isinstance(size, int) else None,
        # S3 says "null" for an object written while versioning was off.
        version_id=version_id if isinstance(version_id, str) and version_id != "null" else None,
    )
