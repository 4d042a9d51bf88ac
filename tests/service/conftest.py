"""Direct handles on PostgreSQL and S3, for tests that check what the API did behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aioboto3
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from devstack.emulator import Emulator

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def s3(emulator: Emulator) -> AsyncIterator[S3Client]:
    async with aioboto3.Session().client(
        "s3", endpoint_url=emulator.url, region_name="us-east-1"
    ) as client:
        yield client


@pytest.fixture
async def sqs(emulator: Emulator) -> AsyncIterator[SQSClient]:
    async with aioboto3.Session().client(
        "sqs", endpoint_url=emulator.url, region_name="us-east-1"
    ) as client:
        yield client
