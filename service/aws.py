"""The AWS clients of both processes, built here and nowhere else.

Each client is an async context manager entered once per process on the caller's exit stack
(the API's lifespan, the worker's `main()`), never per request; Secrets Manager alone is entered
for each of its rare uses (a database login's password, a key the CLI stores).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Final

import aioboto3
from aiobotocore.config import AioConfig

from service import VERSION
from service.config import AwsSettings, DatabaseSettings
from service.storage import s3_client_config

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient

# SQS long polls hold a read open for up to 20 s (ReceiveMessage's longest WaitTimeSeconds).
LONG_POLL_S: Final = 20
# Parameters S3's endpoint rules declare and no rule reads (tests/service/test_aws.py walks the
# rules to hold that true). botocore passes them all the same, so the object key is part of the
# key of its cache of resolved endpoints: every new key misses it and the rules are evaluated
# again (boto/botocore#3528), 13% of the client CPU of a PUT and half that of a pre-signed GET
# URL (bench/README.md). botocore drops these three itself since boto/botocore#3692, in
# releases newer than aioboto3 15.5.0 allows.
UNREAD_S3_ENDPOINT_PARAMETERS: Final = ("Key", "Prefix", "CopySource")
# What CloudTrail and S3's access logs name as the caller (botocore appends its own version).
# A whole string, not `user_agent_appid`: botocore builds that form from a dozen parts twice
# for every request, 80 us of the 1.2-1.4 ms a rendition's PUT costs (bench/README.md).
USER_AGENT: Final = f"picforge/{VERSION}"


def client_config(settings: AwsSettings, *, waits_s: float = 0) -> AioConfig:
    """Timeouts and retries every client shares; `waits_s` is how long the service itself may
    hold a read open on purpose (a long poll)."""
    return AioConfig(
        connect_timeout=settings.aws_connect_timeout_s,
        read_timeout=settings.aws_read_timeout_s + waits_s,
        retries={"mode": "standard", "max_attempts": 3},
        user_agent=USER_AGENT,
    )


async def open_s3_client(
    stack: AsyncExitStack, settings: AwsSettings, endpoint_url: str | None = None
) -> S3Client:
    """An S3 client for `endpoint_url` (default: the configured endpoint, or AWS itself)."""
    client: S3Client = await stack.enter_async_context(
        aioboto3.Session().client(
            "s3",
            region_name=settings.aws_region,
            endpoint_url=endpoint_url or settings.aws_endpoint_url,
            config=client_config(settings).merge(s3_client_config(settings)),
        )
    )
    # NOTE: botocore's private state; tests/service/test_aws.py fails if this stops working.
    endpoint_parameters = client._ruleset_resolver._param_definitions  # type: ignore[attr-defined]
    for name in UNREAD_S3_ENDPOINT_PARAMETERS:
        endpoint_parameters.pop(name, None)
    return client


async def open_sqs_client(
    stack: AsyncExitStack, settings: AwsSettings, *, long_polls: bool = False
) -> SQSClient:
    """`long_polls`: the worker's, whose ReceiveMessage holds its read open on purpose."""
    client: SQSClient = await stack.enter_async_context(
        aioboto3.Session().client(
            "sqs",
            region_name=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            config=client_config(settings, waits_s=LONG_POLL_S if long_polls else 0),
        )
    )
    return client


def secrets_manager_client(settings: DatabaseSettings) -> Any:
    """Secrets Manager, entered with `async with` for each use (a login reading the database's
    password, a key stored by the CLI): no call waits longer than a database login may
    (`db_connect_timeout_s`), where botocore alone would wait 60 s to connect and 60 s a read."""
    timeout_s = settings.db_connect_timeout_s
    return aioboto3.Session().client(
        "secretsmanager",
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        config=AioConfig(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"mode": "standard", "max_attempts": 3},
            user_agent=USER_AGENT,
        ),
    )


async def open_cloudfront_client(stack: AsyncExitStack, settings: AwsSettings) -> Any:
    """aiobotocore's CloudFront client (no type stubs are installed for it)."""
    return await stack.enter_async_context(
        aioboto3.Session().client(
            "cloudfront",
            region_name=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            config=client_config(settings),
        )
    )
