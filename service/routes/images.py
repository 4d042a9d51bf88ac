"""`/v1/images`: declare an upload, then follow the image to its renditions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from service.deps import ImageDep, ResourcesDep, SessionDep
from service.images import create_image, rendition_urls
from service.schemas import ImageCreate, ImageCreatedOut, ImageOut, UploadTicketOut

router = APIRouter(prefix="/images", tags=["images"])

PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such image.", **PROBLEM}}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Declare an upload and get a pre-signed upload ticket",
    responses={422: {"description": "Unaccepted type, too large, or malformed.", **PROBLEM}},
)
async def post_image(
    body: ImageCreate, session: SessionDep, resources: ResourcesDep
) -> ImageCreatedOut:
    image, ticket = await create_image(
        session, resources.presigner, resources.settings, request=body
    )
    record = ImageOut.from_record(image, rendition_urls={})
    return ImageCreatedOut(
        **record.model_dump(),
        upload=UploadTicketOut(
            method="POST", url=ticket.url, fields=ticket.fields, expires_at=ticket.expires_at
        ),
    )


@router.get("/{image_id}", summary="An image's status and renditions", responses=NOT_FOUND)
async def get_image(image: ImageDep, resources: ResourcesDep) -> ImageOut:
    urls = await rendition_urls(resources.presigner, resources.settings, image)
    return ImageOut.from_record(image, urls)
