"""Where objects live in S3, and the pre-signed URLs that let clients reach them directly.

Keys hold no user-supplied text: the filename lives in the database, so a hostile name can
never steer a key. Originals and renditions live in separate buckets, and the uploads bucket
notifies the worker for `ORIGINALS_PREFIX` only, so writing a rendition can never trigger one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from aiobotocore.config import AioConfig

from service.config import AwsSettings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

ORIGINALS_PREFIX = "originals/"
RENDITIONS_PREFIX = "renditions/"


def original_key(image_id: uuid.UUID) -> str:
    return f"{ORIGINALS_PREFIX}{image_id}"


def rendition_key(image_id: uuid.UUID, name: str, extension: str) -> str:
    return f"{RENDITIONS_PREFIX}{image_id}/{name}.{extension}"


def image_id_from_original_key(key: str) -> uuid.UUID | None:
    """The image an uploaded object belongs to, or None for a key we never issued."""
    if not key.startswith(ORIGINALS_PREFIX):
        return None
    try:
        return uuid.UUID(key.removeprefix(ORIGINALS_PREFIX))
    except ValueError:
        return None


def s3_client_config(settings: AwsSettings) -> AioConfig:
    # Emulators serve buckets by path; AWS prefers virtual-hosted names.
    addressing_style: Literal["path", "virtual"] = (
        "path" if settings.aws_endpoint_url else "virtual"
    )
    return AioConfig(
        signature_version="s3v4",
        s3={"addressing_style": addressing_style},
        retries={"mode": "standard", "max_attempts": 3},
    )


@dataclass(frozen=True)
class UploadTicket:
    method: str
    url: str
    fields: dict[str, str]
    expires_at: datetime


async def presign_upload(
    presigner: S3Client,
    *,
    bucket: str,
    key: str,
    content_type: str,
    size_bytes: int,
    expires_s: int,
) -> UploadTicket:
    """A pre-signed POST whose policy S3 enforces: this key exactly, this Content-Type exactly,
    and no more bytes than declared."""
    expires_at = datetime.now(UTC) + timedelta(seconds=expires_s)
    post: dict[str, Any] = await presigner.generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": content_type},
        Conditions=[
            {"Content-Type": content_type},
            ["content-length-range", 1, size_bytes],
        ],
        ExpiresIn=expires_s,
    )
    return UploadTicket(
        method="POST", url=post["url"], fields=post["fields"], expires_at=expires_at
    )


async def presign_download(presigner: S3Client, *, bucket: str, key: str, expires_s: int) -> str:
    url: str = await presigner.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s
    )
    return url
