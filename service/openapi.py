"""The OpenAPI document clients are generated from, and the committed copy of it.

`picforge openapi > openapi.json` regenerates the copy at the repository root (pretty, sorted
keys); a test fails when it no longer matches the app. This module never imports the app: the
app imports it.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from service.config import ApiSettings
from service.errors import Problem

DEFAULT_MAX_UPLOAD_BYTES: int = ApiSettings.model_fields["max_upload_bytes"].default

TAGS = [
    {
        "name": "images",
        "description": "Declare an upload, send the bytes straight to S3 with the ticket, then "
        "follow the image until its renditions are ready. Every image belongs to the owner of "
        "the API key that created it; another owner's image is `image_not_found`.",
    },
    {
        "name": "health",
        "description": "For load balancers and orchestrators: unauthenticated and cheap.",
    },
]


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app)
        return app.openapi_schema

    app.openapi_tags = TAGS
    app.openapi = openapi  # type: ignore[method-assign]


def build_document(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        license_info=app.license_info,
    )
    # Error responses refer to `Problem` by $ref; FastAPI only collects models routes return.
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    add_schema(schemas, Problem, mode="serialization")
    # The size limit is a setting: the live document states this deployment's, the committed
    # copy (built without settings) the default.
    settings: ApiSettings | None = app.state.settings
    limit = settings.max_upload_bytes if settings else DEFAULT_MAX_UPLOAD_BYTES
    schemas["ImageCreate"]["properties"]["size_bytes"]["maximum"] = limit
    return document


def add_schema(
    schemas: dict[str, Any],
    model: type[BaseModel],
    *,
    mode: Literal["validation", "serialization"],
) -> None:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema


def render_document(app: FastAPI) -> str:
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
