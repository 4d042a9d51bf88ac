"""Request dependencies, as `Annotated` aliases so routes read like prose."""

from __future__ import annotations

import logging
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
from service.errors import FOREIGN_ERRORS, Unauthorized
from service.images import require_image
from service.keys import UNKNOWN_KEY, InvalidKey, ParsedKey, parse_key, require_owner
from service.models import Image
from service.resources import Resources

log = logging.getLogger(__name__)

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
    session = resources.sessions()
    try:
        yield session
    finally:
        await _close(session)


async def _close(session: AsyncSession) -> None:
    """Close the route's session, which rolls back what it left open. FastAPI does this once
    the answer is on its way, so a failure here can only break an answer already given; and
    it loses nothing, since a route commits what it keeps. The connection, in a state nobody
    knows, is dropped rather than pooled: the server rolls back a session whose connection
    closes."""
    try:
        await session.close()
    except FOREIGN_ERRORS as exc:
        log.warning("dropped a database connection that did not take its rollback: %r", exc)
        await session.invalidate()


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def api_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(API_KEY)],
) -> ParsedKey:
    """The key of an `Authorization: Bearer <key>` header; not yet known to be active.

    Every `/v1` route depends on it, and FastAPI solves dependencies before it judges the
    request's own parameters or body. A route that checks the key later (the create, inside
    its INSERT) leaves it in `request.state`, so that a request refused as malformed is first
    refused as unauthorized if its key is not active (`refuse_inactive_key`)."""
    if credentials is None:
        raise Unauthorized("send an API key as `Authorization: Bearer <key>`")
    try:
        key = parse_key(credentials.credentials)
    except InvalidKey:
        raise Unauthorized(UNKNOWN_KEY) from None
    request.state.unverified_key = key
    return key


ApiKeyDep = Annotated[ParsedKey, Depends(api_key)]


async def authenticated_owner(
    request: Request, resources: ResourcesDep, key: ApiKeyDep
) -> AsyncIterator[str]:
    """The owner of an active key: how every `/v1` route but the create is authenticated. The
    request holds one of the owner's places in flight until its answer is sent
    (`service.in_flight`)."""
    owner = await require_owner(resources.statements, key)
    request.state.unverified_key = None
    if resources.in_flight is None:
        yield owner
        return
    async with resources.in_flight.taken(owner):
        yield owner


async def refuse_inactive_key(request: Request) -> None:
    """Unauthorized if the request carried a key no one has verified and it is not active:
    run before a request is refused as malformed, so only a valid key learns why."""
    key: ParsedKey | None = getattr(request.state, "unverified_key", None)
    if key is not None:
        resources: Resources = request.app.state.resources
        await require_owner(resources.statements, key)


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
