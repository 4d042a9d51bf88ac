"""What the multipart routes accept and return (`service.routes.multipart`), and the ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SAMPLE_ID = "0b7e5d9c-3f41-4a63-9a8e-2d4b1f6c8e10"
SAMPLE_UPLOAD_ID = "VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"
SAMPLE_ETAG = '"b54357faf0632cce46e942fa68356b38"'
SAMPLE_PART_URL = (
    f"https://picforge-uploads.s3.amazonaws.com/originals/{SAMPLE_ID}?uploadId="
    f"{SAMPLE_UPLOAD_ID}&partNumber=1&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-SignedHeaders="
    "content-length%3Bhost&X-Amz-Signature=..."
)
# The largest batch of part URLs one request signs.
MAX_PARTS_PER_REQUEST = 100


class MultipartUploadTicket(BaseModel):
    """Send the bytes in `part_count` parts of `part_size` bytes (the last one the rest):
    sign their URLs with `POST /v1/images/{id}/multipart/{upload_id}/parts`, PUT each part's
    bytes to its URL (S3 answers 200 with the part's `ETag`), then `POST .../complete`. To
    resume, `GET .../parts` lists what S3 already holds. `DELETE` gives the upload up."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "method": "MULTIPART",
                    "upload_id": SAMPLE_UPLOAD_ID,
                    "key": f"originals/{SAMPLE_ID}",
                    "part_size": 8388608,
                    "part_count": 5,
                    "expires_at": "2026-11-30T09:20:02Z",
                }
            ]
        }
    )

    method: Literal["MULTIPART"]
    upload_id: str = Field(description="S3's id of the upload, for the multipart routes.")
    key: str = Field(description="The object the parts make (what `@uppy/aws-s3` calls `key`).")
    part_size: int = Field(description="Bytes in every part but the last; each URL signs it.")
    part_count: int = Field(description="How many parts the declared size makes.")
    expires_at: datetime = Field(
        description="Complete the upload by this instant: an image not uploaded some time after "
        "it expires, and S3 drops its parts."
    )


class PartsToSign(BaseModel):
    """The parts to sign URLs for."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"part_numbers": [1, 2, 3]}]}
    )

    part_numbers: list[int] = Field(
        min_length=1,
        max_length=MAX_PARTS_PER_REQUEST,
        description="1-based part numbers, each at most the ticket's `part_count`; at most "
        f"{MAX_PARTS_PER_REQUEST} per request.",
    )


class SignedPartOut(BaseModel):
    part_number: int = Field(examples=[1])
    url: str = Field(
        description="PUT the part's bytes here, with no other header: the URL signs the "
        "part's length, so S3 refuses a part of any other size.",
        examples=[SAMPLE_PART_URL],
    )
    size_bytes: int = Field(description="The length the URL signs.", examples=[8388608])


class SignedPartsOut(BaseModel):
    parts: list[SignedPartOut] = Field(description="In the order asked.")
    expires_at: datetime = Field(description="S3 refuses these URLs after this instant.")


class StoredPartOut(BaseModel):
    """A part S3 holds."""

    part_number: int = Field(examples=[1])
    size_bytes: int = Field(examples=[8388608])
    etag: str = Field(examples=[SAMPLE_ETAG])


class StoredPartsOut(BaseModel):
    parts: list[StoredPartOut] = Field(description="Every part S3 holds, by part number.")


class CompletedPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    part_number: int = Field(ge=1, le=10_000, examples=[1])
    etag: str = Field(
        min_length=1,
        max_length=128,
        description="The `ETag` S3 answered the part's PUT with (quoted or not).",
        examples=[SAMPLE_ETAG],
    )


class PartsToComplete(BaseModel):
    """Every part of the upload, as S3 acknowledged them."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"parts": [{"part_number": 1, "etag": SAMPLE_ETAG}]}]},
    )

    parts: list[CompletedPart] = Field(min_length=1, max_length=10_000)
