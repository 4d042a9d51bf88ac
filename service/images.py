"""Use-cases on images. The only module of the API that commits."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from service.config import ApiSettings
from service.content_types import ACCEPTED_CONTENT_TYPES
from service.errors import FileTooLarge, ImageNotFound, UnsupportedContentType
from service.models import Image, ImageStatus
from service.schemas import ImageCreate
from service.storage import UploadTicket, original_key, presign_download, presign_upload

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


def check_upload_allowed(request: ImageCreate, settings: ApiSettings) -> None:
    if request.content_type not in ACCEPTED_CONTENT_TYPES:
        accepted = ", ".join(sorted(ACCEPTED_CONTENT_TYPES))
        raise UnsupportedContentType(
            f"{request.content_type!r} is not an accepted image type; accepted: {accepted}"
        )
    if request.size_bytes > settings.max_upload_bytes:
        raise FileTooLarge(
            f"{request.size_bytes} bytes is over the limit of {settings.max_upload_bytes} bytes"
        )


async def create_image(
    session: AsyncSession, presigner: S3Client, settings: ApiSettings, *, request: ImageCreate
) -> tuple[Image, UploadTicket]:
    check_upload_allowed(request, settings)
    image = Image(
        id=uuid.uuid4(),
        status=ImageStatus.AWAITING_UPLOAD,
        filename=request.filename,
        content_type=request.content_type,
        size_bytes=request.size_bytes,
    )
    ticket = await presign_upload(
        presigner,
        bucket=settings.uploads_bucket,
        key=original_key(image.id),
        content_type=request.content_type,
        size_bytes=request.size_bytes,
        expires_s=settings.presign_expires_s,
    )
    session.add(image)
    await session.commit()
    await session.refresh(image, ["created_at", "updated_at", "renditions"])
    return image, ticket


async def require_image(session: AsyncSession, image_id: uuid.UUID) -> Image:
    image = await session.get(Image, image_id)
    if image is None:
        raise ImageNotFound(f"there is no image {image_id}")
    return image


async def rendition_urls(
    presigner: S3Client, settings: ApiSettings, image: Image
) -> dict[str, str]:
    if settings.public_base_url:
        base = settings.public_base_url.rstrip("/")
        return {r.name: f"{base}/{r.key}" for r in image.renditions}
    return {
        r.name: await presign_download(
            presigner,
            bucket=settings.renditions_bucket,
            key=r.key,
            expires_s=settings.rendition_url_expires_s,
        )
        for r in image.renditions
    }
