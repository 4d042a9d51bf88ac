"""`/v1/images`: declare an upload, follow the image to its renditions, list, reprocess, delete."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response, status

from service.creation import Upload, UploadTickets, create_image
from service.deps import (
    ApiKeyDep,
    ImageDep,
    ImageIdDep,
    OwnerDep,
    ResourcesDep,
    SessionDep,
    reject_unknown_query_parameters,
)
from service.errors import (
    DependencyUnavailable,
    FileTooLarge,
    IdempotencyConflict,
    ImageNotUploaded,
    UnsupportedContentType,
    problem_response,
)
from service.images import delete_image, list_images, reprocess_image
from service.limits import Limits
from service.models import ImageStatus
from service.multipart import MultipartUploads
from service.pagination import CURSOR_PATTERN
from service.resources import Resources
from service.routes.answers import (
    BODY_TOO_LARGE,
    IN_FLIGHT,
    INVALID_REQUEST,
    LIMITED_CREATE,
    LIMITED_REPROCESS,
    MALFORMED,
    NOT_FOUND,
    RATE_HEADERS,
    UNAUTHORIZED,
    UNAVAILABLE,
    UNPARSABLE,
    image_out,
    upload_ticket_out,
)
from service.schemas import ImageCreate, ImageCreatedOut, ImageListOut, ImageOut

router = APIRouter(
    prefix="/images", tags=["images"], dependencies=[Depends(reject_unknown_query_parameters)]
)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Makes the create safe to retry: a request with a key this owner already "
        "used, and the same body, returns the image the first one created (with a freshly "
        "signed ticket, and `Idempotent-Replayed: true`) instead of creating another. The same "
        "key with a different body is refused with `idempotency_conflict`. Use a fresh random "
        "value (a UUID) per image.",
        examples=["5f0c6a8e-8d7b-4c1e-9f7a-2f1f3b9d0c42"],
    ),
]


def multipart_uploads(resources: Resources) -> MultipartUploads:
    return MultipartUploads(
        s3=resources.s3,
        presigner=resources.presigner,
        bucket=resources.settings.uploads_bucket,
        part_bytes=resources.settings.multipart_part_bytes,
        expires_s=resources.settings.presign_expires_s,
    )


def upload_tickets(resources: Resources) -> UploadTickets:
    return UploadTickets(
        post_signer=resources.upload_signer,
        put_signer=resources.presigner,
        bucket=resources.settings.uploads_bucket,
        expires_s=resources.settings.presign_expires_s,
        multipart=multipart_uploads(resources),
        multipart_threshold_bytes=resources.settings.multipart_threshold_bytes,
    )


@router.post(
    "",
    operation_id="createImage",
    status_code=status.HTTP_201_CREATED,
    summary="Declare an upload and get a pre-signed upload ticket",
    description="Checks the declared type and size, records the image as `awaiting_upload`, and "
    "returns it with an `upload` ticket: how to send the bytes straight to S3 before "
    "`expires_at`: a form POST, a PUT, or (for large files, or on request) a multipart upload "
    "whose parts are signed by `signUploadParts`. Nothing is uploaded through this API. Once "
    "S3 has the bytes the image moves to `processing`, then `ready` or `failed`.",
    responses={
        201: {
            "headers": {
                "Idempotent-Replayed": {
                    "description": "`true` when an earlier request with the same "
                    "`Idempotency-Key` created this image.",
                    "schema": {"type": "string", "enum": ["true"]},
                },
                **RATE_HEADERS,
            }
        },
        400: UNPARSABLE,
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
            BODY_TOO_LARGE,
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
        429: LIMITED_CREATE,
        503: problem_response(
            "S3 did not open the multipart upload; the request can be retried (with the same "
            "`Idempotency-Key`, it answers with the same image).",
            DependencyUnavailable("a service this API needs is unavailable; try again"),
        ),
    },
)
async def post_image(
    key: ApiKeyDep,
    resources: ResourcesDep,
    body: ImageCreate,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ImageCreatedOut:
    created = await create_image(
        resources.statements,
        resources.sessions,
        upload_tickets(resources),
        max_upload_bytes=resources.settings.max_upload_bytes,
        key=key,
        upload=Upload(**body.model_dump()),
        idempotency_key=idempotency_key,
        idempotency_key_ttl_s=resources.settings.idempotency_key_ttl_s,
        limits=Limits.from_settings(resources.settings),
    )
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    if created.rate is not None:
        response.headers.update(created.rate.headers())
    image = await image_out(resources, created.image)
    return ImageCreatedOut(**dict(image), upload=upload_ticket_out(created.ticket))


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
            "A malformed parameter: a `cursor` not of the form `next_cursor` takes, say.",
            INVALID_REQUEST,
        ),
        429: IN_FLIGHT,
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
            pattern=CURSOR_PATTERN,
            description="The `next_cursor` of the previous page. Every value of this pattern is "
            "a position in the listing: the page starts after it.",
        ),
    ] = None,
    status: Annotated[ImageStatus | None, Query(description="Only images in this status.")] = None,
) -> ImageListOut:
    page = await list_images(session, owner=owner, limit=limit, cursor=cursor, status=status)
    items = []
    for image in page.images:
        items.append(await image_out(resources, image))
        # Signing an image's URLs is a millisecond of CPU that never waits: without a turn
        # between images, a page of 100 would hold every other request of the process 100 ms.
        await asyncio.sleep(0)
    return ImageListOut(items=items, next_cursor=page.next_cursor)


@router.get(
    "/{image_id}",
    operation_id="getImage",
    summary="An image's status and renditions",
    description="Poll until `status` is `ready` (renditions listed, with URLs to fetch them) or "
    "`failed` (`error.code` says why).",
    responses={401: UNAUTHORIZED, 404: NOT_FOUND, 422: MALFORMED, 429: IN_FLIGHT},
)
async def get_image(image: ImageDep, resources: ResourcesDep) -> ImageOut:
    return await image_out(resources, image)


@router.delete(
    "/{image_id}",
    operation_id="deleteImage",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an image, its original and every rendition",
    description="When this returns, S3 holds nothing of the image, no version and no delete "
    "marker, even if the worker was rendering it, and a CDN in front of the renditions has been "
    "told to drop them; an upload arriving later is removed. Deleting again is `image_not_found`.",
    responses={
        401: UNAUTHORIZED,
        404: NOT_FOUND,
        422: MALFORMED,
        429: IN_FLIGHT,
        503: UNAVAILABLE,
    },
)
async def delete_image_route(
    image_id: ImageIdDep, owner: OwnerDep, session: SessionDep, resources: ResourcesDep
) -> Response:
    await delete_image(
        session,
        resources.s3,
        resources.settings,
        owner=owner,
        image_id=image_id,
        cdn=resources.cdn,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{image_id}/reprocess",
    operation_id="reprocessImage",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Render the image's original again",
    description="Queues the uploaded original for the worker, for instance after the presets "
    "changed. Returns the record as it is now; a `ready` image stays `ready` while its "
    "renditions are replaced. While a render of the image is pending or running, another "
    "request queues nothing more: it returns the record as it is, so repeating the call never "
    "adds work. Only a reprocess that queues a render counts against the owner's reprocess "
    "rate.",
    responses={
        202: {"headers": RATE_HEADERS},
        401: UNAUTHORIZED,
        404: NOT_FOUND,
        409: problem_response(
            "The original has not been uploaded yet.",
            ImageNotUploaded(
                "image 0b7e5d9c-3f41-4a63-9a8e-2d4b1f6c8e10 has no original yet: upload it first"
            ),
        ),
        422: MALFORMED,
        429: LIMITED_REPROCESS,
        503: UNAVAILABLE,
    },
)
async def reprocess(
    image_id: ImageIdDep,
    owner: OwnerDep,
    session: SessionDep,
    resources: ResourcesDep,
    response: Response,
) -> ImageOut:
    image, rate = await reprocess_image(
        session,
        resources.sqs,
        resources.settings,
        owner=owner,
        image_id=image_id,
        limits=Limits.from_settings(resources.settings),
    )
    if rate is not None:
        response.headers.update(rate.headers())
    return await image_out(resources, image)
