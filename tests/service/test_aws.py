"""The AWS clients give up on an endpoint that stopped answering within their timeouts, and what
they raise is a dependency being unavailable (503), not a request held for minutes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from devstack.ports import LOOPBACK
from service.aws import open_cloudfront_client, open_s3_client, open_sqs_client
from service.config import AwsSettings
from service.errors import DependencyUnavailable, domain_error

# The SDK makes 3 attempts, with a backoff of up to a second or two between them.
GIVES_UP_WITHIN_S = 10


@pytest.fixture
async def silent_endpoint() -> AsyncIterator[str]:
    """A TCP server that accepts connections and reads them, but never answers: a black hole,
    as a stalled endpoint or a dropped route is to the client."""
    held: list[asyncio.StreamWriter] = []

    async def read_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(read_forever, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()


Call = Callable[[AsyncExitStack, AwsSettings], Awaitable[Any]]


async def head_bucket(stack: AsyncExitStack, settings: AwsSettings) -> Any:
    s3 = await open_s3_client(stack, settings)
    return await s3.head_bucket(Bucket=settings.uploads_bucket)


async def send_message(stack: AsyncExitStack, settings: AwsSettings) -> Any:
    sqs = await open_sqs_client(stack, settings)
    return await sqs.send_message(QueueUrl=f"{settings.aws_endpoint_url}/0/q", MessageBody="{}")


async def create_invalidation(stack: AsyncExitStack, settings: AwsSettings) -> Any:
    cloudfront = await open_cloudfront_client(stack, settings)
    batch = {"Paths": {"Quantity": 1, "Items": ["/x*"]}, "CallerReference": "r"}
    return await cloudfront.create_invalidation(DistributionId="E1", InvalidationBatch=batch)


@pytest.mark.parametrize("call", [head_bucket, send_message, create_invalidation])
async def test_client_gives_up_on_a_silent_endpoint_as_a_dependency_unavailable(
    silent_endpoint: str, call: Call
) -> None:
    settings = AwsSettings(
        aws_endpoint_url=silent_endpoint,
        aws_connect_timeout_s=0.2,
        aws_read_timeout_s=0.5,
        uploads_bucket="uploads",
        renditions_bucket="renditions",
    )
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        with pytest.raises(Exception) as raised:
            await call(stack, settings)

    assert time.monotonic() - started < GIVES_UP_WITHIN_S
    assert "timeout" in type(raised.value).__name__.lower()
    assert isinstance(domain_error(raised.value), DependencyUnavailable)
