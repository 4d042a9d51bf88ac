"""Domain errors, and the one error shape clients see.

    PicforgeError                    500 internal_error
    ├── Unauthorized                 401 unauthorized
    ├── ImageNotFound                404 image_not_found
    ├── UploadNotFound               404 upload_not_found
    ├── IdempotencyConflict          409 idempotency_conflict
    ├── ImageNotUploaded             409 image_not_uploaded
    ├── UploadIncomplete             409 upload_incomplete
    ├── UnsupportedContentType       422 unsupported_content_type
    ├── FileTooLarge                 422 file_too_large
    ├── InvalidPartNumber            422 invalid_part_number
    ├── TooManyRequests              429 create_rate_limited, reprocess_rate_limited,
    │                                    awaiting_upload_quota_exceeded,
    │                                    stored_bytes_quota_exceeded (service.limits)
    └── DependencyUnavailable        503 dependency_unavailable

Foreign errors become domain errors at one boundary, `domain_error()`, as httpx maps httpcore's:
a dependency that cannot be reached or refuses us (the database down, failing over or out of
connections; S3 or SQS failing; a refused or reset socket to anything) is a 503
`dependency_unavailable`, whichever route meets it, and no use-case lists those errors again.
S3's `NoSuchUpload` (a multipart upload it no longer holds) is a 404 `upload_not_found`.

Request validation (422 `validation_error`), a body cut short (400
`malformed_request`) or too large (413 `payload_too_large`) and routing errors (404
`not_found`, 405 `method_not_allowed`) are HTTP-level errors, from the framework or the create
route's own reading, and leave in the same shape: RFC 9457 `application/problem+json` (the
`Problem` model) with a stable `code`. Nothing about the inside of the service (a stack trace, a
module, a SQL statement) ever reaches a client. The handlers that send them are in
service.error_handlers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field
from sqlalchemy import exc as sqlalchemy_errors

PROBLEM_JSON = "application/problem+json"


class ValidationIssue(BaseModel):
    location: list[str | int] = Field(
        description="Where the bad value is: `body`, `query`, `path` or `header`, then the "
        "field names down to it.",
        examples=[["body", "size_bytes"]],
    )
    message: str = Field(examples=["Input should be greater than 0"])
    type: str = Field(description="The kind of check that failed.", examples=["greater_than"])


class Problem(BaseModel):
    """An RFC 9457 problem document: every error this API returns has this shape."""

    type: str = Field(
        description="A URI naming the kind of problem: `urn:picforge:error:<code>`.",
        examples=["urn:picforge:error:image_not_found"],
    )
    title: str = Field(description="A short summary of the kind of problem, for people.")
    status: int = Field(description="The HTTP status code, repeated.", examples=[404])
    detail: str = Field(description="What went wrong with this request, for people.")
    code: str = Field(
        description="Stable machine-readable reason; branch on this, never on `title` or `detail`.",
        examples=["image_not_found"],
    )
    errors: list[ValidationIssue] | None = Field(
        None, description="Each invalid input, for `validation_error` only."
    )
    limit: str | None = Field(
        None,
        description="For a `429` only: the rate limit (`creates`, `reprocesses`) or the quota "
        "(`awaiting_upload`, `stored_bytes`) that refused the request.",
        examples=["creates"],
    )


class PicforgeError(Exception):
    status_code = 500
    code = "internal_error"
    title = "Internal error"
    headers: ClassVar[dict[str, str] | None] = None

    def __init__(self, detail: str = "Something went wrong on our side.") -> None:
        super().__init__(detail)
        self.detail = detail

    def response_headers(self) -> Mapping[str, str] | None:
        return self.headers


class Unauthorized(PicforgeError):
    status_code = 401
    code = "unauthorized"
    title = "Unauthorized"
    # RFC 6750: tell the client which scheme we want.
    headers: ClassVar[dict[str, str] | None] = {"WWW-Authenticate": 'Bearer realm="picforge"'}


class ImageNotFound(PicforgeError):
    status_code = 404
    code = "image_not_found"
    title = "Image not found"


class UploadNotFound(PicforgeError):
    """No open multipart upload of this id for this image: never issued, another owner's,
    already completed or aborted, or aborted by S3's lifecycle rule."""

    status_code = 404
    code = "upload_not_found"
    title = "Upload not found"


class IdempotencyConflict(PicforgeError):
    status_code = 409
    code = "idempotency_conflict"
    title = "Idempotency key reused"


class ImageNotUploaded(PicforgeError):
    status_code = 409
    code = "image_not_uploaded"
    title = "Image not uploaded yet"


class UploadIncomplete(PicforgeError):
    """The parts S3 holds do not make the declared upload: one is missing, of the wrong size,
    or not the part the client names."""

    status_code = 409
    code = "upload_incomplete"
    title = "Upload incomplete"


class UnsupportedContentType(PicforgeError):
    status_code = 422
    code = "unsupported_content_type"
    title = "Unsupported content type"


class FileTooLarge(PicforgeError):
    status_code = 422
    code = "file_too_large"
    title = "File too large"


class InvalidPartNumber(PicforgeError):
    status_code = 422
    code = "invalid_part_number"
    title = "Invalid part number"


class TooManyRequests(PicforgeError):
    """An owner's rate limit or quota refused the request: `limit` names which, the headers say
    when to come back (`Retry-After`, for a rate) and what is left (`RateLimit-Policy`,
    `RateLimit`)."""

    status_code = 429
    code = "create_rate_limited"  # each refusal names its own (service.limits)
    title = "Too many requests"

    def __init__(self, detail: str, *, code: str, limit: str, headers: Mapping[str, str]) -> None:
        super().__init__(detail)
        self.code = code
        self.limit = limit
        self.limit_headers = dict(headers)

    def response_headers(self) -> Mapping[str, str] | None:
        return self.limit_headers


class DependencyUnavailable(PicforgeError):
    status_code = 503
    code = "dependency_unavailable"
    title = "Dependency unavailable"


# What reaches us when a dependency cannot be reached or refuses us: SQLAlchemy's wrapping of
# the driver's errors, its pool's timeout, botocore's errors (S3, SQS), and the socket's own
# (SQLAlchemy lets a refused connect through unwrapped).
FOREIGN_ERRORS: tuple[type[Exception], ...] = (
    sqlalchemy_errors.DBAPIError,
    sqlalchemy_errors.TimeoutError,
    BotoCoreError,
    ClientError,
    OSError,  # a refused or reset socket, a unix socket gone; TimeoutError is one too
)
# SQLSTATE classes that say the server, not the statement, failed: connection exceptions,
# insufficient resources (too many connections), operator intervention (shutdown, failover),
# and a statement cancelled (57014: the app role's statement timeout ran out behind a lock).
UNAVAILABLE_SQLSTATES = ("08", "53", "57P", "57014")
NO_UPLOAD = ("NoSuchUpload",)
UNREACHABLE_DATABASE = (sqlalchemy_errors.OperationalError, sqlalchemy_errors.InterfaceError)


def domain_error(exc: Exception) -> PicforgeError | None:
    """The domain error a foreign one means, or None for a bug of ours (a statement PostgreSQL
    refused, say), which stays a 500."""
    if isinstance(exc, PicforgeError):
        return exc
    if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in NO_UPLOAD:
        # S3 no longer knows the upload: completed, aborted, or taken by the lifecycle rule.
        return UploadNotFound("there is no such multipart upload open for this image")
    if isinstance(exc, sqlalchemy_errors.DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        if not (
            exc.connection_invalidated
            or isinstance(
                exc, sqlalchemy_errors.OperationalError | sqlalchemy_errors.InterfaceError
            )
            or sqlstate.startswith(UNAVAILABLE_SQLSTATES)
        ):
            return None
    elif not isinstance(exc, FOREIGN_ERRORS):
        return None
    return DependencyUnavailable("a service this API needs is unavailable; try again")


RATE_LIMIT_HEADERS: dict[str, Any] = {
    "Retry-After": {
        "description": "For a rate limit: seconds to wait; the same request then succeeds "
        "unless other requests spent the allowance meanwhile. A quota refusal has none: waiting "
        "frees nothing, an upload or a DELETE does.",
        "schema": {"type": "integer", "minimum": 1},
    },
    "RateLimit-Policy": {
        "description": "The route's limit (draft-ietf-httpapi-ratelimit-headers): "
        '`"creates";q=120;w=60` is 120 per 60 seconds. A create replayed with its '
        "`Idempotency-Key` takes nothing from it, and has neither header.",
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'What is left of it: `"creates";r=12;t=5` is 12 more at once, and the '
        "whole allowance back in 5 seconds.",
        "schema": {"type": "string"},
    },
}


def problem_response(description: str, *examples: PicforgeError | Problem) -> dict[str, Any]:
    """An OpenAPI response object for an error: the `Problem` schema, with examples."""
    documents = [
        example
        if isinstance(example, Problem)
        else Problem(
            type=f"urn:picforge:error:{example.code}",
            title=example.title,
            status=example.status_code,
            detail=example.detail,
            code=example.code,
            limit=example.limit if isinstance(example, TooManyRequests) else None,
        )
        for example in examples
    ]
    content: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/Problem"}}
    if documents:
        content["examples"] = {
            document.code: {
                "summary": document.title,
                "value": document.model_dump(mode="json", exclude_none=True),
            }
            for document in documents
        }
    response: dict[str, Any] = {"description": description, "content": {PROBLEM_JSON: content}}
    if any(document.status == 429 for document in documents):
        response["headers"] = RATE_LIMIT_HEADERS
    if any(document.status == 401 for document in documents):
        response["headers"] = {
            "WWW-Authenticate": {
                "description": "`Bearer`: send an API key as `Authorization: Bearer <key>`.",
                "schema": {"type": "string"},
            }
        }
    return response
