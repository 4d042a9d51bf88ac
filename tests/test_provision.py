"""The local stack is wired like AWS: only originals notify the queue, and the queue has a DLQ."""

from __future__ import annotations

import json

import boto3
import pytest
from mypy_boto3_s3 import S3Client
from mypy_boto3_sqs import SQSClient

from devstack.emulator import Emulator
from devstack.provision import BUCKET_LIFECYCLE, MAX_RECEIVE_COUNT, Stack, provision
from tests.infra.terraform import load_module
from worker.events import ObjectCreated, parse_message_body


@pytest.fixture
def sqs(emulator: Emulator) -> SQSClient:
    return boto3.client("sqs", endpoint_url=emulator.url, region_name="us-east-1")


@pytest.fixture
def s3(emulator: Emulator) -> S3Client:
    return boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1")


def receive_all(sqs: SQSClient, queue_url: str) -> list[str]:
    bodies = []
    while messages := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
    ).get("Messages"):
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_provision_notifies_for_originals_only(stack: Stack, s3: S3Client, sqs: SQSClient) -> None:
    receive_all(sqs, stack.queue_url)  # the s3:TestEvent from configuring the notification
    s3.put_object(Bucket=stack.names.uploads_bucket, Key="renditions/x/thumb.webp", Body=b"x")
    s3.put_object(Bucket=stack.names.uploads_bucket, Key="elsewhere/y", Body=b"y")
    s3.put_object(Bucket=stack.names.renditions_bucket, Key="originals/z", Body=b"z")
    s3.put_object(Bucket=stack.names.uploads_bucket, Key="originals/with space+plus", Body=b"o")

    events = [
        event for body in receive_all(sqs, stack.queue_url) for event in parse_message_body(body)
    ]

    assert [(e.bucket, e.key) for e in events if isinstance(e, ObjectCreated)] == [
        (stack.names.uploads_bucket, "originals/with space+plus")
    ]


def test_provision_sends_test_event_that_parses_to_nothing(stack: Stack, sqs: SQSClient) -> None:
    bodies = receive_all(sqs, stack.queue_url)

    assert any(json.loads(body).get("Event") == "s3:TestEvent" for body in bodies)
    assert all(parse_message_body(body) == [] for body in bodies)


def test_provision_gives_queue_a_dead_letter_queue(stack: Stack, sqs: SQSClient) -> None:
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.queue_url, AttributeNames=["RedrivePolicy"]
    )["Attributes"]

    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == stack.dead_letter_queue_arn
    assert int(redrive["maxReceiveCount"]) == MAX_RECEIVE_COUNT


def test_provision_is_repeatable(stack: Stack, emulator: Emulator) -> None:
    again = provision(emulator.url)

    assert again.queue_url == stack.queue_url


@pytest.mark.parametrize("bucket", ["uploads", "renditions"])
def test_provision_versions_buckets_with_production_lifecycle(
    stack: Stack, s3: S3Client, bucket: str
) -> None:
    name = getattr(stack.names, f"{bucket}_bucket")

    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    rules = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    assert {rule["ID"]: rule["Status"] for rule in rules} == {
        rule["ID"]: "Enabled" for rule in BUCKET_LIFECYCLE[bucket]
    }
    blocked = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    assert all(blocked.values())


def test_provision_uploads_cors_is_terraforms_rule_for_the_api_origins(
    stack: Stack, s3: S3Client
) -> None:
    [local] = s3.get_bucket_cors(Bucket=stack.names.uploads_bucket)["CORSRules"]
    [deployed] = load_module().resource("aws_s3_bucket_cors_configuration", "uploads")["cors_rule"]

    # What /demo and a browser app need: the POST form or the PUT with its signed type.
    assert sorted(local["AllowedMethods"]) == sorted(deployed["allowed_methods"])
    assert (
        local["AllowedHeaders"] == deployed["allowed_headers"] == ["Content-Type", "If-None-Match"]
    )
    # A multipart upload's parts are named by their ETags: exactly that is exposed.
    assert local["ExposeHeaders"] == deployed["expose_headers"] == ["ETag"]
    assert local["MaxAgeSeconds"] == deployed["max_age_seconds"]
    # Origins are the API's own locally, and chosen per deployment on AWS; never a wildcard.
    assert local["AllowedOrigins"] == ["http://127.0.0.1:8000", "http://localhost:8000"]
