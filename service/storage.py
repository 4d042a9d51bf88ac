"""Where objects live in S3, and the pre-signed URLs that let clients reach them directly.

Keys hold no user-supplied text: the filename lives in the database, so a hostile name can
never steer a key. Originals and renditions live in separate buckets, and the uploads bucket
notifies the worker for `ORIGINALS_PREFIX` only, so writing a rendition can never trigger one.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from aiobotocore.config import AioConfig
from botocore.auth import ISO8601, S3SigV4PostAuth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError, NoCredentialsError

from service.config import AwsSettings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef

ORIGINALS_PREFIX = "originals/"
RENDITIONS_PREFIX = "renditions/"


def original_key(image_id: uuid.UUID) -> str:
    return f"{ORIGINALS_PREFIX}{image_id}"


def rendition_key(image_id: uuid.UUID, token: str, name: str, version: str, extension: str) -> str:
    """`token` is the image's random `rendition_token`: with a CDN the URL is the key, and no
    one who knows only an image id can name its renditions. `version` names the preset's
    settings (`worker.presets.Preset.version`): the key changes when they do, so the bytes
    under a key never change."""
    return f"{RENDITIONS_PREFIX}{image_id}/{token}/{name}-{version}.{extension}"


def renditions_prefix(image_id: uuid.UUID) -> str:
    """Every rendition of an image, whatever presets wrote them, lives under this prefix."""
    return f"{RENDITIONS_PREFIX}{image_id}/"


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
    )


class ObjectsNotDeleted(RuntimeError):
    """S3 answered a batch delete but kept some of the objects."""


@dataclass(frozen=True)
class UploadTicket:
    method: Literal["POST", "PUT"]
    url: str
    # POST: the form fields to send before the file. PUT: the headers to send, exactly.
    fields: dict[str, str]
    expires_at: datetime


class PostPolicySigner:
    """Pre-signed POSTs from botocore's own SigV4 POST-policy signer (`S3SigV4PostAuth`).

    `generate_presigned_post` re-resolves the bucket's endpoint from botocore's endpoint ruleset
    on every call, about a third of its cost, though a bucket's URL never changes in a process.
    So botocore resolves each bucket's URL once, on the first ticket (the client's addressing
    style and endpoint, so the public endpoint when clients see another), and each ticket after
    only builds and signs its policy.

    Credentials are asked of the client at every ticket, never kept: on AWS they are the task
    role's temporary ones, and `get_frozen_credentials` refreshes them as they near expiry.
    """

    def __init__(self, client: S3Client) -> None:
        self._client = client
        self._bucket_urls: dict[str, str] = {}

    async def bucket_url(self, bucket: str) -> str:
        url = self._bucket_urls.get(bucket)
        if url is None:
            post = await self._client.generate_presigned_post(Bucket=bucket, Key=ORIGINALS_PREFIX)
            url = self._bucket_urls[bucket] = post["url"]
        return url

    async def sign(
        self,
        *,
        bucket: str,
        key: str,
        fields: dict[str, str],
        conditions: list[Any],
        expires_at: datetime,
    ) -> tuple[str, dict[str, str]]:
        """The URL to POST to, and the form fields: `fields`, the key, and the signed policy."""
        url = await self.bucket_url(bucket)
        # botocore keeps no public handle on a client's credentials; this is the object the
        # client itself signs with, refreshable when the credentials are temporary.
        credentials = self._client._get_credentials()  # type: ignore[attr-defined]
        if credentials is None:
            raise NoCredentialsError()
        frozen = await credentials.get_frozen_credentials()
        request = AWSRequest(method="POST", url=url)
        request.context["s3-presign-post-fields"] = {**fields, "key": key}
        request.context["s3-presign-post-policy"] = {
            "expiration": expires_at.strftime(ISO8601),
            "conditions": [*conditions, {"bucket": bucket}, {"key": key}],
        }
        S3SigV4PostAuth(frozen, "s3", self._client.meta.region_name).add_auth(request)
        signed: dict[str, str] = request.context["s3-presign-post-fields"]
        return url, signed


async def presign_upload(
    signer: PostPolicySigner,
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
    url, fields = await signer.sign(
        bucket=bucket,
        key=key,
        fields={"Content-Type": content_type},
        conditions=[
            {"Content-Type": content_type},
            ["content-length-range", 1, size_bytes],
        ],
        expires_at=expires_at,
    )
    return UploadTicket(method="POST", url=url, fields=fields, expires_at=expires_at)


async def presign_download(presigner: S3Client, *, bucket: str, key: str, expires_s: int) -> str:
    url: str = await presigner.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s
    )
    return url


async def presign_put(
    presigner: S3Client,
    *,
    bucket: str,
    key: str,
    content_type: str,
    size_bytes: int,
    expires_s: int,
) -> UploadTicket:
    """A pre-signed PUT with `Content-Type`, `Content-Length` and `If-None-Match: *` among its
    signed headers: S3 refuses a request whose headers differ, so only this type, exactly this
    many bytes, and only once: S3 answers a second PUT to the key with 412 (a conditional
    write), so a ticket cannot replace an original it already uploaded."""
    expires_at = datetime.now(UTC) + timedelta(seconds=expires_s)
    url: str = await presigner.generate_presigned_url(
        "put_object",
        Params={
            "Bucket": bucket,
            "Key": key,
            "ContentType": content_type,
            "ContentLength": size_bytes,
            "IfNoneMatch": "*",
        },
        ExpiresIn=expires_s,
    )
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(size_bytes),
        "If-None-Match": "*",
    }
    return UploadTicket(method="PUT", url=url, fields=headers, expires_at=expires_at)


async def erase_versions(
    s3: S3Client, *, bucket: str, prefix: str, keys: Collection[str] | None = None
) -> int:
    """Delete for good every version and delete marker under `prefix` (only of `keys`, when
    given). A plain DeleteObject on a versioned bucket only adds a delete marker and leaves the
    bytes as a noncurrent version: this is what makes a delete a delete. Returns how many
    versions and markers it erased."""
    erased = 0
    paginator = s3.get_paginator("list_object_versions")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        entries = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        targets: list[ObjectIdentifierTypeDef] = [
            {"Key": entry["Key"], "VersionId": entry["VersionId"]}
            for entry in entries
            if keys is None or entry["Key"] in keys
        ]
        # DeleteObjects takes at most 1000 entries; a page of versions and markers may hold
        # up to twice that.
        for start in range(0, len(targets), 1000):
            batch = targets[start : start + 1000]
            result = await s3.delete_objects(
                Bucket=bucket, Delete={"Objects": batch, "Quiet": True}
            )
            if result.get("Errors"):
                failed = ", ".join(e.get("Key", "?") for e in result["Errors"])
                raise ObjectsNotDeleted(f"S3 refused to delete {failed}")
            erased += len(batch)
    return erased


async def erase_original(s3: S3Client, *, bucket: str, image_id: uuid.UUID) -> int:
    """Every version and delete marker of an image's original (the exact key, not the keys it
    prefixes), one DeleteObject per version: a batch DeleteObjects would need s3:DeleteObject
    too, the right to hide an original, which the worker has no business holding. An original
    has a version or two, so the calls are few."""
    key = original_key(image_id)
    erased = 0
    paginator = s3.get_paginator("list_object_versions")
    async for page in paginator.paginate(Bucket=bucket, Prefix=key):
        for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            if entry["Key"] == key:
                await s3.delete_object(Bucket=bucket, Key=key, VersionId=entry["VersionId"])
                erased += 1
    return erased


async def delete_image_objects(
    s3: S3Client, *, uploads_bucket: str, renditions_bucket: str, image_id: uuid.UUID
) -> int:
    """Erase an image's original and everything under its renditions prefix, every version and
    delete marker, listed rather than derived from the records, so renditions a worker wrote
    but never recorded go too. Returns how many rendition versions were erased."""
    erased = await erase_versions(s3, bucket=renditions_bucket, prefix=renditions_prefix(image_id))
    # An image never uploaded has no original: nothing to erase is no error.
    await erase_original(s3, bucket=uploads_bucket, image_id=image_id)
    return erased


async def abort_multipart_upload(
    s3: S3Client, *, bucket: str, image_id: uuid.UUID, upload_id: str
) -> None:
    """Abort an image's multipart upload: S3 drops every part it holds. An upload S3 no longer
    knows (completed, aborted, or taken by the lifecycle rule) leaves nothing to drop."""
    try:
        await s3.abort_multipart_upload(
            Bucket=bucket, Key=original_key(image_id), UploadId=upload_id
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
            raise
