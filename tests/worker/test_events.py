"""Message bodies into typed events: S3 notifications, picforge jobs, and everything refused."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from service.jobs import reprocess_message
from worker.events import (
    ObjectCreated,
    ReprocessRequested,
    UnrecognizedMessage,
    parse_message_body,
)


def s3_record(key: Any, *, event: str = "ObjectCreated:Post", size: Any = 42) -> dict[str, Any]:
    return {
        "eventSource": "aws:s3",
        "eventName": event,
        "s3": {"bucket": {"name": "uploads"}, "object": {"key": key, "size": size}},
    }


def test_events_object_created_with_key_url_decoded() -> None:
    body = json.dumps({"Records": [s3_record("originals/a+b%2Bc%C3%A9")]})

    assert parse_message_body(body) == [ObjectCreated("uploads", "originals/a b+cé", 42)]


def test_events_object_created_without_size() -> None:
    body = json.dumps({"Records": [s3_record("originals/x", size="big")]})

    assert parse_message_body(body) == [ObjectCreated("uploads", "originals/x", None)]


def test_events_other_s3_records_are_nothing_to_do() -> None:
    body = json.dumps(
        {"Records": [s3_record("originals/x", event="ObjectRemoved:Delete"), {"x": 1}]}
    )

    assert parse_message_body(body) == []


def test_events_s3_test_event_is_nothing_to_do() -> None:
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "uploads"})

    assert parse_message_body(body) == []


def test_events_reprocess_job_from_the_api_format() -> None:
    image_id = uuid.uuid4()

    assert parse_message_body(reprocess_message(image_id)) == [ReprocessRequested(image_id)]


@pytest.mark.parametrize(
    "body",
    [
        "",
        "hello",
        "[" * 5_000,  # deeper than json's recursion allows
        "[]",
        "null",
        "{}",
        '{"Records": "nope"}',
        json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]}),
        json.dumps({"Records": [s3_record(["not", "a", "key"])]}),
        '{"type": "picforge.unknown"}',
        '{"type": "picforge.reprocess"}',
        '{"type": "picforge.reprocess", "image_id": "not-a-uuid"}',
    ],
)
def test_events_unrecognized_message_is_refused(body: str) -> None:
    with pytest.raises(UnrecognizedMessage):
        parse_message_body(body)
