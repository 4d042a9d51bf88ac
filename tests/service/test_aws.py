"""The AWS clients give up on an endpoint that stopped answering within their timeouts, and what
they raise is a dependency being unavailable (503), not a request held for minutes. The S3
client resolves its endpoint once for a bucket, not once for every object key. Every request
names picforge as its caller."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import botocore.session
import pytest

from devstack.emulator import Emulator
from devstack.provision import Stack
from service import VERSION
from service.aws import (
    UNREAD_S3_ENDPOINT_PARAMETERS,
    open_cloudfront_client,
    open_s3_client,
    open_sqs_client,
)
from service.config import AwsSettings
from service.errors import DependencyUnavailable, domain_error

# The SDK makes 3 attempts, with a backoff of up to a second or two between them.
GIVES_UP_WITHIN_S = 10


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


def references(node: object) -> set[str]:
    """Every parameter a ruleset's rules read (`{"ref": name}`), at any depth."""
    if isinstance(node, dict):
        found = {node["ref"]} if isinstance(node.get("ref"), str) else set()
        return found.union(*(references(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(references(item) for item in node))
    return set()


def test_s3_endpoint_rules_read_none_of_the_parameters_the_client_leaves_out() -> None:
    """Should a botocore release make a rule read one, the client would resolve a wrong
    endpoint without it: this fails first."""
    loader = botocore.session.get_session().get_component("data_loader")
    ruleset = loader.load_service_model("s3", "endpoint-rule-set-1")

    assert set(UNREAD_S3_ENDPOINT_PARAMETERS) <= set(ruleset["parameters"])
    assert not references(ruleset["rules"]) & set(UNREAD_S3_ENDPOINT_PARAMETERS)


@pytest.fixture
def emulated_settings(emulator: Emulator, stack: Stack) -> AwsSettings:
    """The clients' settings for the emulator, its buckets provisioned."""
    return AwsSettings(
        aws_endpoint_url=emulator.url,
        uploads_bucket=stack.names.uploads_bucket,
        renditions_bucket=stack.names.renditions_bucket,
    )


async def test_s3_client_resolves_its_endpoint_once_for_every_key_of_a_bucket(
    emulated_settings: AwsSettings,
) -> None:
    bucket = emulated_settings.renditions_bucket
    async with AsyncExitStack() as stack_of_clients:
        s3 = await open_s3_client(stack_of_clients, emulated_settings)
        await s3.put_object(Bucket=bucket, Key="first", Body=b"1")
        resolve_endpoint = s3._ruleset_resolver._provider.resolve_endpoint  # type: ignore[attr-defined]
        misses = resolve_endpoint.cache_info().misses

        for key in ("second", "a/third"):
            await s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        listing = await s3.list_object_versions(Bucket=bucket, Prefix="a/")
        got = await s3.get_object(Bucket=bucket, Key="a/third")
        async with got["Body"] as body:
            data = await body.read()

        assert resolve_endpoint.cache_info().misses == misses
    assert [version["Key"] for version in listing["Versions"]] == ["a/third"]
    assert data == b"a/third"


async def test_every_request_names_picforge_and_its_release_as_the_caller(
    emulated_settings: AwsSettings, stack: Stack
) -> None:
    """What an operator finds in CloudTrail and in S3's access logs."""
    sent: list[str] = []

    def record_user_agent(request: Any, **_: Any) -> None:
        sent.append(request.headers["User-Agent"].decode())

    async with AsyncExitStack() as stack_of_clients:
        s3 = await open_s3_client(stack_of_clients, emulated_settings)
        sqs = await open_sqs_client(stack_of_clients, emulated_settings)
        for client in (s3, sqs):
            client.meta.events.register("before-send", record_user_agent)
        await s3.put_object(Bucket=emulated_settings.renditions_bucket, Key="named", Body=b"1")
        await sqs.get_queue_url(QueueName=stack.names.queue)

    assert len(sent) == 2
    assert all(agent.startswith(f"picforge/{VERSION} botocore/") for agent in sent)
