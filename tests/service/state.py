"""Reaching past the API: the records in PostgreSQL and the objects in S3."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import ApiSettings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


async def list_keys(s3: S3Client, bucket: str) -> list[str]:
    listing = await s3.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


async def all_objects(s3: S3Client, settings: ApiSettings) -> list[str]:
    """Every object in both buckets, as `bucket/key`."""
    return [
        f"{bucket}/{key}"
        for bucket in (settings.uploads_bucket, settings.renditions_bucket)
        for key in await list_keys(s3, bucket)
    ]


async def all_versions(s3: S3Client, settings: ApiSettings) -> list[str]:
    """Every version and delete marker in both (versioned) buckets, as `bucket/key@version`:
    what S3 still keeps, current or not."""
    found = []
    for bucket in (settings.uploads_bucket, settings.renditions_bucket):
        listing = await s3.list_object_versions(Bucket=bucket)
        for entry in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]:
            found.append(f"{bucket}/{entry['Key']}@{entry['VersionId']}")
    return sorted(found)


async def set_status(db: AsyncEngine, image_id: str, status: str) -> None:
    """Move an image along as the worker would, without running it."""
    async with db.begin() as connection:
        await connection.execute(
            text("UPDATE images SET status = :status WHERE id = :id"),
            {"status": status, "id": uuid.UUID(image_id)},
        )


async def add_rendition(
    db: AsyncEngine, s3: S3Client, settings: ApiSettings, image_id: str, name: str = "thumb"
) -> str:
    """A rendition as the worker writes it: the object, then the row. Returns its key."""
    key = f"renditions/{image_id}/{name}.webp"
    await s3.put_object(
        Bucket=settings.renditions_bucket, Key=key, Body=b"RIFF....WEBP", ContentType="image/webp"
    )
    async with db.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO renditions (image_id, name, key, width, height, format, size_bytes) "
                "VALUES (:id, :name, :key, 128, 96, 'webp', 12)"
            ),
            {"id": uuid.UUID(image_id), "name": name, "key": key},
        )
    return key
