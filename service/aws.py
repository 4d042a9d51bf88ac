"""The AWS clients of both processes, built here and nowhere else.

Each client is an async context manager entered once per process on the caller's exit stack
(the API's lifespan, the worker's `main()`), never per request.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import aioboto3

from service.config import AwsSettings
from service.storage import s3_client_config

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient


async def open_s3_client(
    stack: AsyncExitStack, settings: AwsSettings, endpoint_url: str | None = None
) -> S3Client:
    """An S3 client for `endpoint_url` (default: the configured endpoint, or AWS itself)."""
    client: S3Client = await stack.enter_async_context(
        aioboto3.Session().client(
            "s3",
            region_name=settings.aws_region,
            endpoint_url=endpoint_url or settings.aws_endpoint_url,
            config=s3_client_config(settings),
        )
    )
    return client


async def open_sqs_client(stack: AsyncExitStack, settings: AwsSettings) -> SQSClient:
    client: SQSClient = await stack.enter_async_context(
        aioboto3.Session().client(
            "sqs", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url
        )
    )
    return client
