"""What the API accepts and returns. These models are the OpenAPI document clients generate from."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from service.content_types import ACCEPTED_CONTENT_TYPES
from service.models import Image, ImageStatus
from service.multipart_schemas import MultipartUploadTicket
from service.pagination import CURSOR_PATTERN

ACCEPTED = ", ".join(f"`{t}`" for t in sorted(ACCEPTED_CONTENT_TYPES))
ACCEPTED_ENUM: list[JsonValue] = [*sorted(ACCEPTED_CONTENT_TYPES)]
SAMPLE_ID = "0b7e5d9c-3f41-4a63-9a8e-2d4b1f6c8e10"
SAMPLE_TIME = "2026-11-30T09:15:02.123456Z"
SAMPLE_POST_TICKET: dict[str, JsonValue] = {
    "method": "POST",
    "url": "https://picforge-uploads.s3.amazonaws.com/",
    "fields": {
        "Content-Type": "image/jpeg",
        "key": f"originals/{SAMPLE_ID}",
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": "AKIA.../20261130/us-east-1/s3/aws4_request",
        "x-amz-date": "20261130T091502Z",
        "policy": "eyJleHBpcmF0aW9uIjogIjIwMjYtMTEtMzBUMDk6MjA6MDJaIiwg...",
        "x-amz-signature": "5d6f...",
    },
    "expires_at": "2026-11-30T09:20:02Z",
}


class ImageCreate(BaseModel):
    """The upload a client is about to make."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"filename": "cat.jpg", "content_type": "image/jpeg", "size_bytes": 48213},
                {
                    "filename": "dog.png",
                    "content_type": "image/png",
                    "size_bytes": 120400,
                    "upload_method": "put",
                },
                {
                    "filename": "panorama.jpg",
                    "content_type": "image/jpeg",
                    "size_bytes": 41943040,
                    "upload_method": "multipart",
                },
            ]
        },
    )

    filename: str = Field(
        min_length=1,
        max_length=255,
        # No control characters: PostgreSQL refuses NUL in text, and none belongs in a label.
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="The name the file had on the client; kept only as a label, never in a "
        "storage key. Up to 255 characters, none of them control characters.",
    )
    # A string checked by the use-case rather than a Literal, so that another type is refused
    # as `unsupported_content_type` with the list, not as a generic validation error; the
    # document still lists the values, for generated clients.
    content_type: str = Field(
        max_length=64,
        description="The MIME type the upload will carry; S3 refuses any other. One of "
        f"{ACCEPTED}; anything else is refused with `unsupported_content_type`.",
        json_schema_extra={"enum": ACCEPTED_ENUM},
    )
    size_bytes: int = Field(
        ge=1,
        description="The size of the upload in bytes. Over the server's limit (`maximum`, 50 "
        "MiB unless the deployment configured another) it is refused with `file_too_large`. "
        "With `post`, S3 refuses a larger body; with `put`, S3 accepts exactly this many "
        "bytes; with `multipart`, S3 accepts parts of exactly the sizes this makes, and the "
        "API completes only the parts that add up to it.",
    )
    upload_method: Literal["post", "put", "multipart"] | None = Field(
        None,
        description="How the client will send the bytes to S3: `post`, a multipart form (what "
        "a browser `<form>` or `FormData` sends), `put`, the raw bytes as the request body "
        "(simplest from mobile apps and servers), or `multipart`, S3's multipart upload: parts "
        "sent one by one, each by its own pre-signed URL, so a dropped connection costs one "
        "part and an interrupted upload resumes from the parts S3 holds. Left out: "
        "`multipart` from the deployment's threshold on (16 MiB unless it configured "
        "another), `post` below it.",
    )


class ImageErrorOut(BaseModel):
    """Why the worker refused an image."""

    code: str = Field(
        description="Stable machine-readable reason, e.g. `corrupt_image`, `pixel_limit_exceeded`.",
        examples=["corrupt_image"],
    )
    message: str = Field(description="What went wrong, for people.")


class PlaceholderOut(BaseModel):
    """What to paint while the renditions load."""

    thumbhash: str = Field(
        description="A ThumbHash (base64) of the upright image: decode it to paint a blurred "
        "preview before any rendition arrives.",
        examples=["1QcSHQRnh493V4dIh4eXh1h4kJUI"],
    )
    dominant_color: str = Field(
        pattern="^#[0-9a-f]{6}$", description="The image's dominant colour.", examples=["#7f5a3c"]
    )


class RenditionOut(BaseModel):
    """One resized copy of the image, ready to serve."""

    name: str = Field(description="The preset that made it.", examples=["thumb"])
    width: int = Field(description="In pixels.", examples=[128])
    height: int = Field(description="In pixels.", examples=[96])
    format: str = Field(description="The encoding: `webp`, `jpeg` or `avif`.", examples=["webp"])
    size_bytes: int = Field(examples=[3120])
    url: str = Field(
        description="Where to fetch it: a pre-signed URL that expires (fetch a fresh record "
        "for a new one), or a plain URL under the deployment's CDN."
    )


class ImageOut(BaseModel):
    """An image's record: what was declared, how far it has got, and its renditions."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": SAMPLE_ID,
                    "status": "ready",
                    "filename": "cat.jpg",
                    "content_type": "image/jpeg",
                    "size_bytes": 48213,
                    "width": 1024,
                    "height": 768,
                    "created_at": SAMPLE_TIME,
                    "updated_at": SAMPLE_TIME,
                    "error": None,
                    "placeholder": {
                        "thumbhash": "1QcSHQRnh493V4dIh4eXh1h4kJUI",
                        "dominant_color": "#7f5a3c",
                    },
                    "renditions": [
                        {
                            "name": "thumb",
                            "width": 128,
                            "height": 96,
                            "format": "webp",
                            "size_bytes": 3120,
                            "url": f"https://cdn.example.com/renditions/{SAMPLE_ID}/thumb.webp",
                        }
                    ],
                }
            ]
        }
    )

    id: uuid.UUID = Field(description="The image's id, for every other route.")
    status: ImageStatus = Field(
        description="`awaiting_upload` until the bytes arrive, then `processing`, then `ready` "
        "or `failed`. `expired`: no upload arrived before the ticket expired (plus a grace "
        "period); an upload arriving later is removed. Create the image again."
    )
    filename: str = Field(description="As declared; a label only.")
    content_type: str = Field(description="As declared; the bytes must turn out to be this.")
    size_bytes: int = Field(description="As declared: the upload's size, or most it may be.")
    width: int | None = Field(description="The original's upright width, once known.")
    height: int | None = Field(description="The original's upright height, once known.")
    created_at: datetime = Field(description="When the upload was declared.")
    updated_at: datetime = Field(description="When the record last changed.")
    error: ImageErrorOut | None = Field(description="Why the image failed, when it did.")
    placeholder: PlaceholderOut | None = Field(description="Set once the image is `ready`.")
    renditions: list[RenditionOut] = Field(
        description="Every rendition made so far, smallest first; empty until `ready`."
    )

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


class PostUploadTicket(BaseModel):
    """Send a `multipart/form-data` POST to `url`: every field of `fields`, in order, then the
    bytes as the last field, named `file`. S3 answers 204."""

    model_config = ConfigDict(json_schema_extra={"examples": [SAMPLE_POST_TICKET]})

    method: Literal["POST"]
    url: str
    fields: dict[str, str] = Field(description="Form fields to send before the file.")
    expires_at: datetime = Field(description="S3 refuses the ticket after this instant.")


class PutUploadTicket(BaseModel):
    """Send a PUT to `url` with exactly `headers` and the bytes as the body. S3 answers 200;
    it refuses another `Content-Type` or any other length, and answers 412 to a second PUT: an
    original is uploaded once."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "method": "PUT",
                    "url": f"https://picforge-uploads.s3.amazonaws.com/originals/{SAMPLE_ID}"
                    "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-SignedHeaders="
                    "content-length%3Bcontent-type%3Bhost%3Bif-none-match&X-Amz-Signature=...",
                    "headers": {
                        "Content-Type": "image/png",
                        "Content-Length": "120400",
                        "If-None-Match": "*",
                    },
                    "expires_at": "2026-11-30T09:20:02Z",
                }
            ]
        }
    )

    method: Literal["PUT"]
    url: str
    headers: dict[str, str] = Field(description="Headers to send, exactly; both are signed.")
    expires_at: datetime = Field(description="S3 refuses the ticket after this instant.")


UploadTicketOut = Annotated[
    PostUploadTicket | PutUploadTicket | MultipartUploadTicket, Field(discriminator="method")
]


class ImageCreatedOut(ImageOut):
    """The new image's record, and the ticket to upload its bytes with."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": SAMPLE_ID,
                    "status": "awaiting_upload",
                    "filename": "cat.jpg",
                    "content_type": "image/jpeg",
                    "size_bytes": 48213,
                    "width": None,
                    "height": None,
                    "created_at": SAMPLE_TIME,
                    "updated_at": SAMPLE_TIME,
                    "error": None,
                    "placeholder": None,
                    "renditions": [],
                    "upload": SAMPLE_POST_TICKET,
                }
            ]
        }
    )

    upload: UploadTicketOut = Field(
        description="How to send the bytes straight to S3; `method` says which kind."
    )


class ImageListOut(BaseModel):
    """One page of the owner's images."""

    items: list[ImageOut] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; `null` on the last page.",
        pattern=CURSOR_PATTERN,
        examples=["1796029302123456-0b7e5d9c3f414a639a8e2d4b1f6c8e10"],
    )
