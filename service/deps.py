"""Request dependencies, as `Annotated` aliases so routes read like prose."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from service.config import ApiSettings
from service.errors import Unauthorized
from service.images import require_image
from service.keys import UNKNOWN_KEY, InvalidKey, ParsedKey, parse_key, require_owner
from service.models import Image
from service.resources import Resources

API_KEY = HTTPBearer(
    scheme_name="ApiKey",
    bearerFormat="pf_<key-id>_<secret>",
    description="An API key, sent as `Authorization: Bearer pf_<key-id>_<secret>`. An operator "
    "makes one with `picforge keys create <owner>`; every image belongs to the owner of the "
    "key that created it, and only that owner's keys can see it.",
    # Missing credentials are our Unauthorized, so they leave in the one error shape.
    auto_error=False,
)


# Dependencies are `async def` even when they never await: FastAPI runs a plain `def` in its
# thread pool, a hand-off that costs more than the work itself.


async def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_settings(resources: ResourcesDep) -> ApiSettings:
    return resources.settings


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]


async def get_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    async with resources.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def api_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(API_KEY)],
) -> ParsedKey:
    """The key of an `Authorization: Bearer <key>` header; not yet known to be active."""
    if credentials is None:
        raise Unauthorized("send an API key as `Authorization: Bearer <key>`")
    try:
        return parse_key(credentials.credentials)
    except InvalidKey:
        raise Unauthorized(UNKNOWN_KEY) from None


async def authenticated_owner(
    resources: ResourcesDep, key: Annotated[ParsedKey, Depends(api_key)]
) -> str:
    """The one way a request is authenticated: every `/v1` route depends on it, and FastAPI
    solves it before it judges the request's own parameters or body, so only the holder of a
    valid key learns what is wrong with a request."""
    return await require_owner(resources.statements, key)


OwnerDep = Annotated[str, Depends(authenticated_owner)]
ImageIdDep = Annotated[uuid.UUID, Path(description="The image's id, as `POST /v1/images` gave it.")]


async def valid_image(session: SessionDep, owner: OwnerDep, image_id: ImageIdDep) -> Image:
    return await require_image(session, owner=owner, image_id=image_id)


ImageDep = Annotated[Image, Depends(valid_image)]


def query_parameter_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= query_parameter_names(dependency)
    return names


async def reject_unknown_query_parameters(request: Request) -> None:
    """A misspelt parameter (`?stauts=ready`) is refused rather than silently ignored, the way
    an unknown body field is."""
    if not request.scope["query_string"]:
        return  # most requests have no query at all: nothing can be unknown
    route = request.scope.get("route")
    declared = query_parameter_names(route.dependant) if isinstance(route, APIRoute) else set()
    unknown = sorted(set(request.query_params) - declared)
    if unknown:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": "Unknown query parameter",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )
