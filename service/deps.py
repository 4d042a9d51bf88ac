"""Request dependencies, as `Annotated` aliases so routes read like prose."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Path, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import ClientDisconnect

from service.config import ApiSettings
from service.errors import Unauthorized
from service.images import require_image
from service.keys import UNKNOWN_KEY, InvalidKey, ParsedKey, parse_key, require_owner
from service.models import Image
from service.resources import Resources

Model = TypeVar("Model", bound=BaseModel)

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


def require_api_key(credentials: HTTPAuthorizationCredentials | None) -> ParsedKey:
    """The key of an `Authorization: Bearer <key>` header; not yet known to be active."""
    if credentials is None:
        raise Unauthorized("send an API key as `Authorization: Bearer <key>`")
    try:
        return parse_key(credentials.credentials)
    except InvalidKey:
        raise Unauthorized(UNKNOWN_KEY) from None


async def authenticated_owner(
    resources: ResourcesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(API_KEY)],
) -> str:
    return await require_owner(resources.statements, require_api_key(credentials))


OwnerDep = Annotated[str, Depends(authenticated_owner)]
ImageIdDep = Annotated[uuid.UUID, Path(description="The image's id, as `POST /v1/images` gave it.")]


async def valid_image(session: SessionDep, owner: OwnerDep, image_id: ImageIdDep) -> Image:
    return await require_image(session, owner=owner, image_id=image_id)


ImageDep = Annotated[Image, Depends(valid_image)]


# The create route reads its own request (see `service.routes.images.post_image`): these read
# it as FastAPI would, and refuse it in the same shape.


# Far more than any JSON body the API takes, and little enough to hold for every request at once.
MAX_JSON_BODY_BYTES = 16 * 1024


async def read_json_body(request: Request, model: type[Model]) -> Model:
    """The body as a `model`; a 422 located in `body` when it is not one, a 413 when it is
    larger than any such body (read no further, so a huge one costs no memory)."""
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_JSON_BODY_BYTES:
                raise HTTPException(413, f"the body is over {MAX_JSON_BODY_BYTES} bytes")
    except ClientDisconnect:
        raise HTTPException(400, "the request body was cut short") from None
    if not is_json(request.headers.get("content-type", "")):
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "Send the body as JSON", "type": "content_type"}]
        )
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise located_validation_error(exc, "body") from None


def is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def located_validation_error(exc: ValidationError, *location: str) -> RequestValidationError:
    """pydantic's errors, located the way FastAPI locates them: `body`, `header`, ..."""
    return RequestValidationError(
        [
            {**error, "loc": (*location, *error["loc"])}
            for error in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
    )


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
