"""`/v1/images`: declare an upload, follow the image to its renditions, list, reprocess, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import StringConstraints, TypeAdapter, ValidationError

from service.deps import (
    API_KEY,
    ImageDep,
    ImageIdDep,
    OwnerDep,
    ResourcesDep,
    SessionDep,
    get_resources,
    located_validation_error,
    read_json_body,
    reject_unknown_query_parameters,
    require_api_key,
)
from service.errors import (
    DependencyUnavailable,
    FileTooLarge,
    IdempotencyConflict,
    ImageNotFound,
    ImageNotUploaded,
    InvalidCursor,
    Problem,
    Unauthorized,
    UnsupportedContentType,
    ValidationIssue,
    problem_response,
)
from service.images import (
    create_image,
    delete_image,
    list_images,
    rendition_urls,
    reprocess_image,
)
from service.keys import require_owner
from service.models import ImageStatus
from service.schemas import (
    ImageCreate,
    ImageCreatedOut,
    ImageListOut,
    ImageOut,
    PostUploadTicket,
    PutUploadTicket,
)
from service.storage import UploadTicket

router = APIRouter(
    prefix="/images", tags=["images"], dependencies=[Depends(reject_unknown_query_parameters)]
)

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
UNAVAILABLE = problem_response(
    "S3 or SQS did not answer; nothing was changed, so the request can be retried.",
    DependencyUnavailable("storage is unavailable; the image is kept, try again"),
)
IDEMPOTENCY_KEY = TypeAdapter(
    Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
)
IDEMPOTENCY_KEY_DESCRIPTION = (
    "Makes the create safe to retry: a request with a key this owner already used, and the "
    "same body, returns the image the first one created (with a freshly signed ticket, and "
    "`Idempotent-Replayed: true`) instead of creating another. The same key with a different "
    "body is refused with `idempotency_conflict`. Use a fresh random value (a UUID) per image."
)


CREATE_IMAGE_REQUEST: dict[str, Any] = {
    "security": [{API_KEY.scheme_name: []}],
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": IDEMPOTENCY_KEY_DESCRIPTION,
            "schema": {
                **IDEMPOTENCY_KEY.json_schema(),
                "examples": ["5f0c6a8e-8d7b-4c1e-9f7a-2f1f3b9d0c42"],
            },
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ImageCreate"}}},
    },
}


def read_idempotency_key(request: Request) -> str | None:
    value = request.headers.get("idempotency-key")
    if value is None:
        return None
    try:
        return IDEMPOTENCY_KEY.validate_python(value)
    except ValidationError as exc:
        raise located_validation_error(exc, "header", "Idempotency-Key") from None


def upload_ticket_out(ticket: UploadTicket) -> PostUploadTicket | PutUploadTicket:
    if ticket.method == "PUT":
        return PutUploadTicket(
            method="PUT", url=ticket.url, headers=ticket.fields, expires_at=ticket.expires_at
        )
    return PostUploadTicket(
        method="POST", url=ticket.url, fields=ticket.fields, expires_at=ticket.expires_at
    )


@router.post(
    "",
    operation_id="createImage",
    openapi_extra=CREATE_IMAGE_REQUEST,
    status_code=status.HTTP_201_CREATED,
    summary="Declare an upload and get a pre-signed upload ticket",
    description="Checks the declared type and size, records the image as `awaiting_upload`, and "
    "returns it with an `upload` ticket: how to send the bytes straight to S3 before "
    "`expires_at`. Nothing is uploaded through this API. Once S3 has the bytes the image moves "
    "to `processing`, then `ready` or `failed`.",
    responses={
        201: {
            "headers": {
                "Idempotent-Replayed": {
                    "description": "`true` when an earlier request with the same "
                    "`Idempotency-Key` created this image.",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            }
        },
        400: problem_response(
            "The body was cut short: the client stopped sending it.",
            Problem(
                type="urn:picforge:error:malformed_request",
                title="Malformed request",
                status=400,
                detail="the request body was cut short",
                code="malformed_request",
            ),
        ),
        401: UNAUTHORIZED,
        409: problem_response(
            "The `Idempotency-Key` was already used with a different body.",
            IdempotencyConflict(
                "this Idempotency-Key was used with a different request body; use a new key "
                "for a new image"
            ),
        ),
        413: problem_response(
            "The request body is larger than any create needs (16 KiB); it was not read.",
            Problem(
                type="urn:picforge:error:payload_too_large",
                title="Payload too large",
                status=413,
                detail="the body is over 16384 bytes",
                code="payload_too_large",
            ),
        ),
        422: problem_response(
            "An unaccepted type, a file over the size limit, or a malformed request. No upload "
            "URL is issued.",
            UnsupportedContentType(
                "'image/bmp' is not an accepted image type; accepted: image/avif, image/gif, "
                "image/heic, image/heif, image/jpeg, image/png, image/webp"
            ),
            FileTooLarge("104857600 bytes is over the limit of 52428800 bytes"),
            INVALID_REQUEST,
        ),
    },
)
async def post_image(request: Request, response: Response) -> ImageCreatedOut:
    # Every upload starts here, so this route reads its own request rather than declaring
    # parameters: FastAPI's parameter machinery would add about a third to a create's CPU
    # (bench/README.md). CREATE_IMAGE_REQUEST describes the same request to the document.
    resources = await get_resources(request)
    key = require_api_key(await API_KEY(request))
    try:
        body = await read_json_body(request, ImageCreate)
        created = await create_image(
            resources, key=key, request=body, idempotency_key=read_idempotency_key(request)
        )
    except (RequestValidationError, HTTPException, UnsupportedContentType, FileTooLarge):
        # Only the holder of a valid key learns what is wrong with the request.
        await require_owner(resources.statements, key)
        raise
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return ImageCreatedOut(**dict(created.image), upload=upload_ticket_out(created.ticket))


@router.get(
    "",
    operation_id="listImages",
    summary="List the owner's images, newest first",
    description="Cursor-paginated: pass a page's `next_cursor` as `cursor` to get the next; "
    "`next_cursor` is `null` on the last page. Images created while you page through appear "
    "on a fresh listing, and never make a page repeat or skip an image.",
    responses={
        401: UNAUTHORIZED,
        422: problem_response(
            "A cursor this API did not issue, or a malformed parameter.",
            InvalidCursor("the cursor is not one this API issued; list again without one"),
            INVALID_REQUEST,
        ),
    },
)
async def get_images(
    owner: OwnerDep,
    session: SessionDep,
    resources: ResourcesDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Images per page.")] = 20,
    cursor: Annotated[
        str | None,
        Query(
            max_length=200,
            description="The `next_cursor` of the previous page; opaque.",
            # Documented, not enforced here: any bad cursor is `invalid_cursor` alike.
            json_schema_extra={"pattern": "^[A-Za-z0-9_-]+$"},
        ),
    ] = None,
    status: Annotated[ImageStatus | None, Query(description="Only images in this status.")] = None,
) -> ImageListOut:
    page = await list_images(session, owner=owner, limit=limit, cursor=cursor, status=status)
    items = [
        ImageOut.from_record(
            image, await rendition_urls(resources.presigner, resources.settings, image)
        )
        for image in page.images
    ]
    return ImageListOut(items=items, next_cursor=page.next_cursor)


@router.get(
    "/{image_id}",
    operation_id="getImage",
    summary="An image's status and renditions",
    description="Poll until `status` is `ready` (renditions listed, with URLs to fetch them) or "
    "`failed` (`error.code` says why).",
    responses={401: UNAUTHORIZED, 404: NOT_FOUND, 422: MALFORMED},
)
async def get_image(image: ImageDep, resources: ResourcesDep) -> ImageOut:
    urls = await rendition_urls(resources.presigner, resources.settings, image)
    return ImageOut.from_record(image, urls)


@router.delete(
    "/{image_id}",
    operation_id="deleteImage",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an image, its original and every rendition",
    description="When this returns, S3 holds nothing of the image, even if the worker was "
    "rendering it. Deleting again is `image_not_found`.",
    responses={401: UNAUTHORIZED, 404: NOT_FOUND, 422: MALFORMED, 503: UNAVAILABLE},
)
async def delete_image_route(
    image_id: ImageIdDep, owner: OwnerDep, session: SessionDep, resources: ResourcesDep
) -> Response:
    await delete_image(session, resources.s3, resources.settings, owner=owner, image_id=image_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{image_id}/reprocess",
    operation_id="reprocessImage",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Render the image's original again",
    description="Queues the uploaded original for the worker, for instance after the presets "
    "changed. Returns the record as it is now; a `ready` image stays `ready` while its "
    "renditions are replaced.",
    responses={
        401: UNAUTHORIZED,
        404: NOT_FOUND,
        409: problem_response(
            "The original has not been uploaded yet.",
            ImageNotUploaded(
                "image 0b7e5d9c-3f41-4a63-9a8e-2d4b1f6c8e10 has no original yet: upload it first"
            ),
        ),
        422: MALFORMED,
        503: UNAVAILABLE,
    },
)
async def reprocess(
    image_id: ImageIdDep, owner: OwnerDep, session: SessionDep, resources: ResourcesDep
) -> ImageOut:
    image = await reprocess_image(
        session, resources.sqs, resources.settings, owner=owner, image_id=image_id
    )
    urls = await rendition_urls(resources.presigner, resources.settings, image)
    return ImageOut.from_record(image, urls)
