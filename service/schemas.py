"""What the API accepts and returns. These models are the OpenAPI document clients generate from."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.models import Image, ImageStatus


class ImageCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"filename": "cat.jpg", "content_type": "image/jpeg", "size_bytes": 48213}]
        },
    )

    filename: str = Field(
        min_length=1,
        max_length=255,
        description="The name the file had on the client; kept only as a label.",
    )
    content_type: str = Field(
        max_length=64, description="The MIME type the upload will carry; S3 refuses any other."
    )
    size_bytes: int = Field(
        gt=0, description="The exact or maximum size of the upload; S3 refuses larger bodies."
    )


class ImageErrorOut(BaseModel):
    code: str = Field(description="Stable machine-readable reason, e.g. `corrupt_image`.")
    message: str = Field(description="What went wrong, for people.")


class PlaceholderOut(BaseModel):
    thumbhash: str = Field(
        description="A ThumbHash (base64) of the upright image: decode it to paint a blurred "
        "preview before any rendition arrives.",
        examples=["1QcSHQRnh493V4dIh4eXh1h4kJUI"],
    )
    dominant_color: str = Field(
        pattern="^#[0-9a-f]{6}$", description="The image's dominant colour.", examples=["#7f5a3c"]
    )


class RenditionOut(BaseModel):
    name: str = Field(examples=["thumb"])
    width: int
    height: int
    format: str = Field(examples=["webp"])
    size_bytes: int
    url: str = Field(description="Where to fetch the rendition (pre-signed, or under the CDN).")


class ImageOut(BaseModel):
    id: uuid.UUID
    status: ImageStatus = Field(
        description="`awaiting_upload` until the bytes arrive, then `processing`, then `ready` "
        "or `failed`."
    )
    filename: str
    content_type: str
    size_bytes: int
    width: int | None = Field(description="The original's upright width, once known.")
    height: int | None = Field(description="The original's upright height, once known.")
    created_at: datetime
    updated_at: datetime
    error: ImageErrorOut | None = Field(description="Why the image failed, when it did.")
    placeholder: PlaceholderOut | None = Field(description="Set once the image is `ready`.")
    renditions: list[RenditionOut]

    @classmethod
    def from_record(cls, image: Image, rendition_urls: dict[str, str]) -> ImageOut:
        error = (
            ImageErrorOut(code=image.error_code, message=image.error_message or "")
            if image.error_code
            else None
        )
        placeholder = (
            PlaceholderOut(thumbhash=image.thumbhash, dominant_color=image.dominant_color)
            if image.thumbhash and image.dominant_color
            else None
        )
        return cls(
            id=image.id,
            status=image.status,
            filename=image.filename,
            content_type=image.content_type,
            size_bytes=image.size_bytes,
            width=image.width,
            height=image.height,
            created_at=image.created_at,
            updated_at=image.updated_at,
            error=error,
            placeholder=placeholder,
            renditions=[
                RenditionOut(
                    name=r.name,
                    width=r.width,
                    height=r.height,
                    format=r.format,
                    size_bytes=r.size_bytes,
                    url=rendition_urls[r.name],
                )
                for r in image.renditions
            ],
        )


class UploadTicketOut(BaseModel):
    method: Literal["POST"] = Field(
        description="Send a multipart/form-data POST to `url`: every field in `fields`, then "
        "the bytes as the last field, named `file`."
    )
    url: str
    fields: dict[str, str]
    expires_at: datetime = Field(description="The ticket is refused by S3 after this instant.")


class ImageCreatedOut(ImageOut):
    upload: UploadTicketOut
