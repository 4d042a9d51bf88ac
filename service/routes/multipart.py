"""`/v1/images/{id}/multipart/{upload_id}`: sign parts, list them, complete, abort.

The routes `@uppy/aws-s3` (or any client) drives a multipart upload with; see
`service.multipart` for how the declared size is held to.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from service.deps import (
    ImageIdDep,
    OwnerDep,
    ResourcesDep,
    SessionDep,
    reject_unknown_query_parameters,
)
from service.errors import (
    DependencyUnavailable,
    ImageNotFound,
    InvalidPartNumber,
    UploadIncomplete,
    UploadNotFound,
    problem_response,
)
from service.multipart import abort_upload, complete_upload, list_parts, sign_parts
from service.multipart_schemas import (
    PartsToComplete,
    PartsToSign,
    SignedPartOut,
    SignedPartsOut,
    StoredPartOut,
    StoredPartsOut,
)
from service.routes.answers import (
    BODY_TOO_LARGE,
    IN_FLIGHT,
    MALFORMED,
    UNAUTHORIZED,
    UNAVAILABLE,
    UNPARSABLE,
    image_out,
)
from service.routes.images import multipart_uploads
from service.schemas import ImageOut

router = APIRouter(
    prefix="/images/{image_id}/multipart/{upload_id}",
    tags=["multipart uploads"],
    dependencies=[Depends(reject_unknown_query_parameters)],
)

UploadIdDep = Annotated[
    str,
    Path(
        min_length=1,
        max_length=1024,
        pattern=r"^[\x21-\x7e]+$",
        description="The ticket's `upload_id`.",
    ),
]
NOT_FOUND = problem_response(
    "No such image, or no such open upload of it: another owner's image or upload id, an "
    "upload already completed or aborted, or one S3 dropped are all indistinguishable.",
    ImageNotFound("there is no image 0b7e5d9c-3f41-4a63-9a8e-2d4b1f6c8e10"),
    UploadNotFound(
        "image 0b7e5d9c-3f41-4a63-9a8e-2d4b1f6c8e10 has no open multipart upload VXBsb2Fk"
    ),
)


@router.post(
    "/parts",
    operation_id="signUploadParts",
    summary="Pre-signed URLs for a batch of parts",
    description="One PUT URL per part number, each signing the part's exact length: PUT the "
    "part's bytes to it, with no other header; S3 answers with its `ETag`, which `complete` "
    "needs. URLs may be signed again, for a part to send again.",
    responses={
        400: UNPARSABLE,
        401: UNAUTHORIZED,
        404: NOT_FOUND,
        422: problem_response(
            "A part number past the upload's last part, or a malformed request.",
            InvalidPartNumber("this upload has parts 1 to 5; there is no part 6"),
        ),
        429: IN_FLIGHT,
    },
)
async def post_parts(
    image_id: ImageIdDep,
    upload_id: UploadIdDep,
    owner: OwnerDep,
    session: SessionDep,
    resources: ResourcesDep,
    body: PartsToSign,
) -> SignedPartsOut:
    signed, expires_at = await sign_parts(
        session,
        multipart_uploads(resources),
        owner=owner,
        image_id=image_id,
        upload_id=upload_id,
        part_numbers=body.part_numbers,
    )
    parts = [
        SignedPartOut(part_number=p.part_number, url=p.url, size_bytes=p.size_bytes) for p in signed
    ]
    return SignedPartsOut(parts=parts, expires_at=expires_at)


@router.get(
    "/parts",
    operation_id="listUploadParts",
    summary="The parts S3 holds: where to resume from",
    description="Every part S3 has received, with its size and `ETag`. A client that was "
    "interrupted sends only the parts missing here.",
    responses={
        401: UNAUTHORIZED,
        404: NOT_FOUND,
        422: MALFORMED,
        429: IN_FLIGHT,
        503: UNAVAILABLE,
    },
)
async def get_parts(
    image_id: ImageIdDep,
    upload_id: UploadIdDep,
    owner: OwnerDep,
    session: SessionDep,
    resources: ResourcesDep,
) -> StoredPartsOut:
    stored = await list_parts(
        session, multipart_uploads(resources), owner=owner, image_id=image_id, upload_id=upload_id
    )
    parts = [
        StoredPartOut(part_number=p.part_number, size_bytes=p.size_bytes, etag=p.etag)
        for p in stored
    ]
    return StoredPartsOut(parts=parts)


@router.post(
    "/complete",
    operation_id="completeUpload",
    summary="Assemble the parts into the original",
    description="Checks that S3 holds exactly the declared upload's parts, each of its size, "
    "and that they are the parts named, then has S3 assemble them (refusing any total other "
    "than `size_bytes`). The image is returned `awaiting_upload`: S3's event then takes it to "
    "`processing`, and `ready` or `failed`, as any upload.",
    responses={
        400: UNPARSABLE,
        401: UNAUTHORIZED,
        404: NOT_FOUND,
        409: problem_response(
            "The parts S3 holds do not make the declared upload; nothing was assembled. Send "
            "what `listUploadParts` lacks, then complete again.",
            UploadIncomplete("S3 holds no part 3 of this upload's 5 parts"),
        ),
        413: problem_response(
            "The body is longer than the part list of the largest upload this deployment "
            "allows (200 bytes a part); it was not read.",
            BODY_TOO_LARGE,
        ),
        422: MALFORMED,
        429: IN_FLIGHT,
        503: UNAVAILABLE,
    },
)
async def post_complete(
    image_id: ImageIdDep,
    upload_id: UploadIdDep,
    owner: OwnerDep,
    session: SessionDep,
    resources: ResourcesDep,
    body: PartsToComplete,
) -> ImageOut:
    image = await complete_upload(
        session,
        multipart_uploads(resources),
        owner=owner,
        image_id=image_id,
        upload_id=upload_id,
        parts={part.part_number: part.etag for part in body.parts},
    )
    return await image_out(resources, image)


@router.delete(
    "",
    operation_id="abortUpload",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Give the upload up: its parts and its image are deleted",
    description="S3 drops every part it holds, and the image, which can no longer be "
    "uploaded, is deleted: nothing is left. A part sent afterwards is refused by S3.",
    responses={
        401: UNAUTHORIZED,
        404: NOT_FOUND,
        422: MALFORMED,
        429: IN_FLIGHT,
        503: problem_response(
            "S3 did not answer; the upload and image are kept, so the request can be retried.",
            DependencyUnavailable("a service this API needs is unavailable; try again"),
        ),
    },
)
async def delete_upload(
    image_id: ImageIdDep,
    upload_id: UploadIdDep,
    owner: OwnerDep,
    session: SessionDep,
    resources: ResourcesDep,
) -> Response:
    await abort_upload(
        session, multipart_uploads(resources), owner=owner, image_id=image_id, upload_id=upload_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
