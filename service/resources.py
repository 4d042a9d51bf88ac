"""The long-lived connections of the API process, opened once in the lifespan."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import aioboto3
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service.config import ApiSettings, AwsSettings
from service.db import StatementPool
from service.inserts import ImageInserts
from service.storage import PostPolicySigner, s3_client_config

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient


@dataclass(frozen=True)
class Resources:
    settings: ApiSettings
    engine: AsyncEngine
    # Single autocommit statements on the hot path: the key lookup, plain creates' INSERTs.
    statements: StatementPool
    inserts: ImageInserts
    sessions: async_sessionmaker[AsyncSession]
    s3: S3Client
    # Signs URLs for clients; differs from `s3` only when clients see another endpoint.
    presigner: S3Client
    # Sends reprocess jobs to the worker's queue.
    sqs: SQSClient

    @cached_property
    def upload_signer(self) -> PostPolicySigner:
        """Signs upload tickets as `presigner` would, remembering each bucket's URL."""
        return PostPolicySigner(self.presigner)


async def open_s3_client(
    stack: AsyncExitStack, settings: AwsSettings, endpoint_url: str | None
) -> S3Client:
    session = aioboto3.Session()
    client: S3Client = await stack.enter_async_context(
        session.client(
            "s3",
            region_name=settings.aws_region,
            endpoint_url=endpoint_url,
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
