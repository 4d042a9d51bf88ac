"""The AWS clients of both processes, built here and nowhere else.

Each client is an async context manager entered once per process on the caller's exit stack
(the API's lifespan, the worker's `main()`), never per request.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Final

import aioboto3
from aiobotocore.config import AioConfig

from service.config import AwsSettings
from service.storage import s3_client_config

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient

# SQS long polls hold a read open for up to 20 s (ReceiveMessage's longest WaitTimeSeconds).
LONG_POLL_S: Final = 20


def client_config(settings: AwsSettings, *, waits_s: float = 0) -> AioConfig:
    """Timeouts and retries every client shares; `waits_s` is how long the service itself may
    hold a read open on purpose (a long poll)."""
    return AioConfig(
        connect_timeout=settings.aws_connect_timeout_s,
        read_timeout=settings.aws_read_timeout_s + waits_s,
        retries={"mode": "standard", "max_attempts": 3},
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
