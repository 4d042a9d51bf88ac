"""`PostPolicySigner`: pre-signed POSTs signed without botocore's per-call endpoint resolution."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aioboto3
import pytest

from devstack.emulator import Emulator
from devstack.provision import Stack
from service.config import AwsSettings
from service.storage import PostPolicySigner, original_key, presign_upload, s3_client_config
from tests.flow import upload

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 60


async def temporary_credentials(emulator: Emulator) -> dict[str, str]:
    """Credentials with a session token, the kind an ECS task role hands out."""
    async with aioboto3.Session().client(
        "sts", endpoint_url=emulator.url, region_name="us-east-1"
    ) as sts:
        issued = await sts.get_session_token(DurationSeconds=900)
    credentials = issued["Credentials"]
    return {
        "aws_access_key_id": credentials["AccessKeyId"],
        "aws_secret_access_key": credentials["SecretAccessKey"],
        "aws_session_token": credentials["SessionToken"],
    }


@pytest.fixture
async def temporary_s3(emulator: Emulator, stack: Stack) -> AsyncIterator[S3Client]:
    settings = AwsSettings(
        aws_endpoint_url=emulator.url,
        uploads_bucket=stack.names.uploads_bucket,
        renditions_bucket=stack.names.renditions_bucket,
    )
    async with aioboto3.Session(**await temporary_credentials(emulator)).client(
        "s3", endpoint_url=emulator.url, region_name="us-east-1", config=s3_client_config(settings)
    ) as client:
        yield client


async def test_presign_upload_with_temporary_credentials_is_accepted(
    temporary_s3: S3Client, s3: S3Client, stack: Stack
) -> None:
    key = original_key(uuid.uuid4())
    ticket = await presign_upload(
        PostPolicySigner(temporary_s3),
        bucket=stack.names.uploads_bucket,
        key=key,
        content_type="image/jpeg",
        size_bytes=len(JPEG),
        expires_s=300,
    )
    credentials = await temporary_s3._get_credentials().get_frozen_credentials()  # type: ignore[attr-defined]
    assert ticket.fields["x-amz-security-token"] == credentials.token

    response = await upload(
        {"url": ticket.url, "fields": ticket.fields}, JPEG, content_type="image/jpeg"
    )

    assert response.status_code in (200, 201, 204), response.text
    stored = await s3.get_object(Bucket=stack.names.uploads_bucket, Key=key)
    assert await stored["Body"].read() == JPEG


@pytest.mark.parametrize("endpoint_url", [None, "http://localhost:4566"])
async def test_presign_upload_posts_where_botocore_would(endpoint_url: str | None) -> None:
    """Virtual-hosted on AWS, path-style on an emulator: the bucket URL is botocore's own."""
    settings = AwsSettings(
        aws_endpoint_url=endpoint_url, uploads_bucket="uploads", renditions_bucket="renditions"
    )
    async with aioboto3.Session().client(
        "s3", endpoint_url=endpoint_url, region_name="eu-west-1", config=s3_client_config(settings)
    ) as client:
        expected = await client.generate_presigned_post(Bucket="uploads", Key="originals/x")
        ticket = await presign_upload(
            PostPolicySigner(client),
            bucket="uploads",
            key="originals/x",
            content_type="image/png",
            size_bytes=10,
            expires_s=60,
        )

    assert ticket.url == expected["url"]
    assert set(ticket.fields) == set(expected["fields"]) | {"Content-Type"}
    assert ticket.fields["x-amz-credential"].endswith("/eu-west-1/s3/aws4_request")
