"""`picforge doctor` on a well-provisioned stack, then with each piece broken in turn."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import boto3
import pytest

from devstack.emulator import Emulator
from devstack.provision import Stack
from tests.cli.conftest import Ran, picforge

pytestmark = pytest.mark.timeout(600)

CHECKS = [
    "AWS identity",
    "uploads bucket picforge-uploads",
    "renditions bucket picforge-renditions",
    "notification configured",
    "notification reaches the queue",
    "dead-letter queue and redrive",
    "database",
]


def deployment_env(stack: Stack, emulator: Emulator, database_url: str) -> dict[str, str]:
    return {
        "PICFORGE_DATABASE_URL": database_url,
        "PICFORGE_AWS_ENDPOINT_URL": emulator.url,
        "PICFORGE_UPLOADS_BUCKET": stack.names.uploads_bucket,
        "PICFORGE_RENDITIONS_BUCKET": stack.names.renditions_bucket,
        "PICFORGE_QUEUE_URL": stack.queue_url,
    }


async def doctor(env: dict[str, str]) -> Ran:
    return await picforge("doctor", "--probe-timeout", "4", env=env)


def verdicts(ran: Ran) -> dict[str, str]:
    """Check name -> its whole line, for every PASS/FAIL line printed."""
    found = {}
    for line in ran.stdout.splitlines():
        verdict, _, rest = line.partition("  ")
        assert verdict in {"PASS", "FAIL"}, line
        found[rest.split(": ", 1)[0]] = line
    return found


async def test_doctor_passes_every_check_on_a_good_stack(
    stack: Stack, emulator: Emulator, database_url: str
) -> None:
    ran = await doctor(deployment_env(stack, emulator, database_url))

    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = verdicts(ran)
    assert list(lines) == CHECKS
    assert all(line.startswith("PASS") for line in lines.values()), ran.stdout
    assert "arrived as a message" in lines["notification reaches the queue"]
    # The probe is gone again.
    s3 = boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1")
    listed = s3.list_objects_v2(Bucket=stack.names.uploads_bucket, Prefix="originals/")
    assert listed.get("KeyCount", 0) == 0


def remove_renditions_bucket(stack: Stack, url: str) -> None:
    boto3.client("s3", endpoint_url=url, region_name="us-east-1").delete_bucket(
        Bucket=stack.names.renditions_bucket
    )


def unblock_public_access(stack: Stack, url: str) -> None:
    boto3.client("s3", endpoint_url=url, region_name="us-east-1").put_public_access_block(
        Bucket=stack.names.uploads_bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": False,
            "RestrictPublicBuckets": False,
        },
    )


def remove_notification(stack: Stack, url: str) -> None:
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    s3.put_bucket_notification_configuration(
        Bucket=stack.names.uploads_bucket, NotificationConfiguration={}
    )


def remove_redrive(stack: Stack, url: str) -> None:
    boto3.client("sqs", endpoint_url=url, region_name="us-east-1").set_queue_attributes(
        QueueUrl=stack.queue_url, Attributes={"RedrivePolicy": ""}
    )


def remove_dead_letter_queue(stack: Stack, url: str) -> None:
    boto3.client("sqs", endpoint_url=url, region_name="us-east-1").delete_queue(
        QueueUrl=stack.dead_letter_queue_url
    )


@pytest.mark.parametrize(
    ("breaks", "failing", "says"),
    [
        (remove_renditions_bucket, ["renditions bucket picforge-renditions"], "cannot reach"),
        (unblock_public_access, ["uploads bucket picforge-uploads"],
         "public access is not blocked: BlockPublicPolicy, RestrictPublicBuckets off"),
        (remove_notification, ["notification configured", "notification reaches the queue"],
         "sends no ObjectCreated event for originals/"),
        (remove_redrive, ["dead-letter queue and redrive"], "no redrive policy"),
        (remove_dead_letter_queue, ["dead-letter queue and redrive"],
         "the dead-letter queue arn:aws:sqs:us-east-1:000000000000:picforge-uploads-dlq"),
    ],
    ids=["renditions-bucket", "public-access", "notification", "redrive", "dlq"],
)  # fmt: skip
async def test_doctor_fails_with_a_clear_line_for_each_broken_piece(
    stack: Stack,
    emulator: Emulator,
    database_url: str,
    breaks: Callable[[Stack, str], None],
    failing: list[str],
    says: str,
) -> None:
    await asyncio.to_thread(breaks, stack, emulator.url)

    ran = await doctor(deployment_env(stack, emulator, database_url))

    assert ran.returncode == 1, ran.stdout
    lines = verdicts(ran)
    assert list(lines) == CHECKS
    assert [name for name, line in lines.items() if line.startswith("FAIL")] == failing
    assert says in lines[failing[0]]
    assert "Traceback" not in ran.stdout + ran.stderr


async def test_doctor_fails_the_database_line_when_not_migrated(
    stack: Stack, emulator: Emulator, database_url: str, unmigrated_database_url: str
) -> None:
    env = deployment_env(stack, emulator, database_url)

    ran = await doctor({**env, "PICFORGE_DATABASE_URL": unmigrated_database_url})

    assert ran.returncode == 1
    line = verdicts(ran)["database"]
    assert line.startswith("FAIL  database: the database schema is at revision none")
    assert "run `picforge migrate` first" in line


async def test_doctor_fails_every_aws_line_when_the_endpoint_is_unreachable(
    stack: Stack, emulator: Emulator, database_url: str
) -> None:
    env = deployment_env(stack, emulator, database_url)

    ran = await doctor({**env, "PICFORGE_AWS_ENDPOINT_URL": "http://127.0.0.1:9"})

    assert ran.returncode == 1
    lines = verdicts(ran)
    assert [name for name, line in lines.items() if line.startswith("PASS")] == ["database"]
    assert "Could not connect to the endpoint URL" in lines["AWS identity"]
