"""`picforge doctor`: check a deployment the way an operator would, one PASS/FAIL line each.

Reads the same `PICFORGE_*` settings as the API. Checks, in order: the AWS identity the
process runs as; both buckets exist with every public access block on; the uploads bucket
notifies the queue for `originals/`, and a probe object written there really produces a message
(the probe and its message are removed afterwards); the queue's redrive policy names a
dead-letter queue that exists; the database is reachable and migrated. Exit status 1 if any
check failed, 2 if the settings themselves are wrong.

A running worker competes for the probe's message: if it takes it first, the probe check fails
with that said; stop the workers (or read their log for the probe key) to be sure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from service.config import ApiSettings
from service.db import SchemaNotMigrated, head_revision
from service.startup import ConfigurationError, check_database, exit_on_bad_configuration
from service.startup import load_settings as load_startup_settings
from service.storage import ORIGINALS_PREFIX

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

PUBLIC_ACCESS_FLAGS = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)
PROBE_PREFIX = f"{ORIGINALS_PREFIX}picforge-doctor-probe-"


class CheckFailed(Exception):
    """The check's finding, for its FAIL line."""


@dataclass(frozen=True)
class Clients:
    s3: S3Client
    sqs: SQSClient
    sts: Any  # the project installs no STS stubs for one call


def open_clients(settings: ApiSettings) -> Clients:
    config = Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"max_attempts": 1},
        s3={"addressing_style": "path" if settings.aws_endpoint_url else "virtual"},
    )
    args: dict[str, Any] = {
        "region_name": settings.aws_region,
        "endpoint_url": settings.aws_endpoint_url,
        "config": config,
    }
    return Clients(
        s3=boto3.client("s3", **args),
        sqs=boto3.client("sqs", **args),
        sts=boto3.client("sts", **args),
    )


def aws_error(exc: ClientError | BotoCoreError) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc)


def check_identity(clients: Clients) -> str:
    identity: dict[str, str] = clients.sts.get_caller_identity()
    return f"{identity['Arn']} (account {identity['Account']})"


def check_bucket(clients: Clients, bucket: str) -> str:
    try:
        clients.s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        raise CheckFailed(f"cannot reach the bucket ({aws_error(exc)})") from None
    try:
        block = clients.s3.get_public_access_block(Bucket=bucket)
    except ClientError as exc:
        raise CheckFailed(f"exists, but has no public access block ({aws_error(exc)})") from None
    flags = block["PublicAccessBlockConfiguration"]
    off = [flag for flag in PUBLIC_ACCESS_FLAGS if not flags.get(flag)]
    if off:
        raise CheckFailed(f"exists, but public access is not blocked: {', '.join(off)} off")
    return "exists, all public access blocked"


def queue_arn(clients: Clients, queue_url: str) -> str:
    attributes = clients.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]


def check_notification(clients: Clients, settings: ApiSettings) -> str:
    arn = queue_arn(clients, settings.queue_url)
    configuration = clients.s3.get_bucket_notification_configuration(Bucket=settings.uploads_bucket)
    for queue in configuration.get("QueueConfigurations", []):
        rules = queue.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        prefixes = [r["Value"] for r in rules if r["Name"].lower() == "prefix"]
        created = any(event.startswith("s3:ObjectCreated:") for event in queue["Events"])
        if queue["QueueArn"] == arn and created and prefixes == [ORIGINALS_PREFIX]:
            return f"ObjectCreated under {ORIGINALS_PREFIX} goes to {arn}"
    raise CheckFailed(
        f"the uploads bucket sends no ObjectCreated event for {ORIGINALS_PREFIX} to {arn}"
    )


def keys_in(body: str) -> Iterator[str]:
    try:
        document = json.loads(body)
        records = document.get("Records", []) if isinstance(document, dict) else []
        for record in records:
            yield unquote_plus(record["s3"]["object"]["key"])
    except (ValueError, KeyError, TypeError):
        return


def wait_for_probe(clients: Clients, queue_url: str, key: str, timeout_s: float) -> float:
    """Seconds until the probe's message arrived; other messages are handed straight back."""
    started = time.monotonic()
    while (left := timeout_s - (time.monotonic() - started)) > 0:
        received = clients.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=max(1, min(5, int(left))),
            VisibilityTimeout=30,
        )
        for message in received.get("Messages", []):
            receipt = message["ReceiptHandle"]
            if key in keys_in(message["Body"]):
                clients.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt)
                return time.monotonic() - started
            clients.sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
            )
    raise CheckFailed(
        f"no message for the probe {key} within {timeout_s:g} s: check the notification and "
        "the queue policy; a running worker may also have taken it (see its log)"
    )


def remove_probe(clients: Clients, bucket: str, key: str) -> None:
    """Every version of the probe, so a versioned bucket keeps nothing of it either."""
    versions = clients.s3.list_object_versions(Bucket=bucket, Prefix=key)
    for entry in [*versions.get("Versions", []), *versions.get("DeleteMarkers", [])]:
        if entry["Key"] == key:
            clients.s3.delete_object(Bucket=bucket, Key=key, VersionId=entry["VersionId"])
    clients.s3.delete_object(Bucket=bucket, Key=key)


def check_probe(clients: Clients, settings: ApiSettings, timeout_s: float) -> str:
    key = f"{PROBE_PREFIX}{uuid.uuid4()}"
    clients.s3.put_object(Bucket=settings.uploads_bucket, Key=key, Body=b"picforge doctor probe")
    try:
        took = wait_for_probe(clients, settings.queue_url, key, timeout_s)
    finally:
        remove_probe(clients, settings.uploads_bucket, key)
    return f"a probe object under {ORIGINALS_PREFIX} arrived as a message in {took:.1f} s"


def check_redrive(clients: Clients, queue_url: str) -> str:
    attributes = clients.sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    if "RedrivePolicy" not in attributes:
        raise CheckFailed("the queue has no redrive policy: a failing message is never set aside")
    policy = json.loads(attributes["RedrivePolicy"])
    dlq_arn = str(policy["deadLetterTargetArn"])
    account, name = dlq_arn.split(":")[4], dlq_arn.split(":")[5]
    try:
        clients.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
    except ClientError as exc:
        raise CheckFailed(
            f"the dead-letter queue {dlq_arn} is missing ({aws_error(exc)})"
        ) from None
    return f"after {policy['maxReceiveCount']} receives, messages move to {name}"


def check_migrated(settings: ApiSettings) -> str:
    try:
        asyncio.run(check_database(settings))
    except (ConfigurationError, SchemaNotMigrated) as exc:
        raise CheckFailed(str(exc)) from None
    return f"reachable, migrated to {head_revision()}"


def run_check(name: str, check: Callable[[], str]) -> bool:
    try:
        detail, passed = check(), True
    except CheckFailed as exc:
        detail, passed = str(exc), False
    except (ClientError, BotoCoreError) as exc:
        detail, passed = aws_error(exc), False
    print(f"{'PASS' if passed else 'FAIL'}  {name}: {detail}", flush=True)  # noqa: T201
    return passed


def doctor(args: argparse.Namespace) -> None:
    with exit_on_bad_configuration("doctor"):
        settings = load_startup_settings(ApiSettings)
    clients = open_clients(settings)
    checks: list[tuple[str, Callable[[], str]]] = [
        ("AWS identity", lambda: check_identity(clients)),
        (f"uploads bucket {settings.uploads_bucket}",
         lambda: check_bucket(clients, settings.uploads_bucket)),
        (f"renditions bucket {settings.renditions_bucket}",
         lambda: check_bucket(clients, settings.renditions_bucket)),
        ("notification configured", lambda: check_notification(clients, settings)),
        ("notification reaches the queue",
         lambda: check_probe(clients, settings, args.probe_timeout)),
        ("dead-letter queue and redrive", lambda: check_redrive(clients, settings.queue_url)),
        ("database", lambda: check_migrated(settings)),
    ]  # fmt: skip
    passed = [run_check(name, check) for name, check in checks]
    if not all(passed):
        raise SystemExit(1)


def add_doctor_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("doctor", help="check the AWS resources and database, PASS/FAIL")
    parser.add_argument(
        "--probe-timeout",
        type=float,
        default=20,
        help="seconds to wait for the probe object's message (default 20)",
    )
    parser.set_defaults(run=doctor)
