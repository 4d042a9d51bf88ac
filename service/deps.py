"""Request dependencies, as `Annotated` aliases so routes read like prose."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from service.images import require_image
from service.models import Image
from service.resources import Resources

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    async with resources.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def get_presigner(resources: ResourcesDep) -> S3Client:
    return resources.presigner


async def valid_image(
    session: SessionDep, image_id: Annotated[uuid.UUID, Path(description="The image's id.")]
) -> Image:
    return await require_image(session, image_id)


ImageDep = Annotated[Image, Depends(valid_image)]
