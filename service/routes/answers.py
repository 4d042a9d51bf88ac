"""How the image routes answer: the error answers they document (OpenAPI `responses`, with
examples), an upload ticket as the client sees it, and the one way a record becomes an image."""

from __future__ import annotations

from service.errors import (
    DependencyUnavailable,
    ImageNotFound,
    Problem,
    TooManyRequests,
    Unauthorized,
    ValidationIssue,
    problem_response,
)
from service.models import Image
from service.multipart import MultipartTicket
from service.multipart_schemas import MultipartUploadTicket
from service.resources import Resources
from service.schemas import ImageOut, PostUploadTicket, PutUploadTicket
from service.storage import UploadTicket, presign_download

INVALID_REQUEST = Problem(
    type="urn:picforge:error:validation_error",
    title="Invalid request",
    status=422,
    detail="body.size_bytes: Input should be greater than 0",
    code="validation_error",
    errors=[
        ValidationIssue(
            location=["body", "size_bytes"],
            message="Input should be greater than 0",
            type="greater_than",
        )
    ],
)
UNAUTHORIZED = problem_response(
    "No API key, or one that is unknown or revoked.",
    Unauthorized("the API key is unknown or has been revoked"),
)
NOT_FOUND = problem_response(
    "No such image, or one another owner made: the two are indistinguishable.",
    ImageNotFound("there is no image 0b7e5d9c-3f41-4a63-9a8e-2d4b1f6c8e10"),
)
MALFORMED = problem_response("The request is malformed.", INVALID_REQUEST)
UNPARSABLE = problem_response(
    "The body is not JSON, or was cut short.",
    Problem(
        type="urn:picforge:error:malformed_request",
        title="Malformed request",
        status=400,
        detail="There was an error parsing the body",
        code="malformed_request",
    ),
)
BODY_TOO_LARGE = Problem(
    type="urn:picforge:error:payload_too_large",
    title="Payload too large",
    status=413,
    detail="the body is over 16384 bytes",
    code="payload_too_large",
)
UNAVAILABLE = problem_response(
    "S3 or SQS did not answer; nothing was changed, so the request can be retried.",
    DependencyUnavailable("storage is unavailable; the image is kept, try again"),
)
LIMITED_CREATE = problem_response(
    "The owner's creates rate, or one of its quotas, refused the create: `code` and `limit` "
    "say which. A rate refusal comes with `Retry-After`; a quota frees as images are uploaded "
    "(`awaiting_upload`) or deleted (both).",
    TooManyRequests(
        "more than 120 creates a minute (60 at once): retry after 1 s",
        code="create_rate_limited",
        limit="creates",
        headers={},
    ),
    TooManyRequests(
        "500 images are awaiting upload, as many as this owner may have at once (500): "
        "upload or delete some first",
        code="awaiting_upload_quota_exceeded",
        limit="awaiting_upload",
        headers={},
    ),
    TooManyRequests(
        "123456 more bytes would take this owner over its storage quota: 10737400000 "
        "of 10737418240 bytes stored; delete images to free some",
        code="stored_bytes_quota_exceeded",
        limit="stored_bytes",
        headers={},
    ),
)
IN_FLIGHT_REFUSAL = TooManyRequests(
    "this owner's 8 requests in flight here, the most it may have at once, held their places "
    "for 1 s: retry after 1 s",
    code="concurrency_limited",
    limit="in_flight",
    headers={},
)
IN_FLIGHT_DESCRIPTION = (
    "The owner's `PICFORGE_MAX_IN_FLIGHT_PER_OWNER` requests in flight in this API process (8 "
    "unless the deployment set another) kept their places for the second this one waited: "
    "nothing was done. Retry after `Retry-After` (1 s), or wait for the answers already asked "
    "for."
)
IN_FLIGHT = problem_response(IN_FLIGHT_DESCRIPTION, IN_FLIGHT_REFUSAL)
LIMITED_REPROCESS = problem_response(
    "The owner's reprocess rate refused it: nothing was queued. Retry after `Retry-After`. "
    f"Or: {IN_FLIGHT_DESCRIPTION}",
    TooManyRequests(
        "more than 30 reprocesses a minute: retry after 2 s",
        code="reprocess_rate_limited",
        limit="reprocesses",
        headers={},
    ),
    IN_FLIGHT_REFUSAL,
)
RATE_HEADERS = {
    name: header
    for name, header in LIMITED_CREATE["headers"].items()
    if name in ("RateLimit-Policy", "RateLimit")
}


def upload_ticket_out(
    ticket: UploadTicket | MultipartTicket,
) -> PostUploadTicket | PutUploadTicket | MultipartUploadTicket:
    if isinstance(ticket, MultipartTicket):
        return MultipartUploadTicket(
            method="MULTIPART",
            upload_id=ticket.upload_id,
            key=ticket.key,
            part_size=ticket.part_bytes,
            part_count=ticket.part_count,
            expires_at=ticket.expires_at,
        )
    if ticket.method == "PUT":
        return PutUploadTicket(
            method="PUT", url=ticket.url, headers=ticket.fields, expires_at=ticket.expires_at
        )
    return PostUploadTicket(
        method="POST", url=ticket.url, fields=ticket.fields, expires_at=ticket.expires_at
    )


async def image_out(resources: Resources, image: Image) -> ImageOut:
    """The one way a record becomes an answer: every route that returns an image uses it."""
    settings = resources.settings
    if settings.public_base_url:
        base = settings.public_base_url.rstrip("/")
        urls = {r.name: f"{base}/{r.key}" for r in image.renditions}
    else:
        urls = {
            r.name: await presign_download(
                resources.presigner,
                bucket=settings.renditions_bucket,
                key=r.key,
                expires_s=settings.rendition_url_expires_s,
            )
            for r in image.renditions
        }
    return ImageOut.from_record(image, urls)
