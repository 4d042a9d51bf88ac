"""The API application: `create_app()` builds it, the lifespan owns every connection."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from service.config import ApiSettings
from service.db import create_engine, create_sessionmaker, require_migrated
from service.errors import install_error_handlers
from service.resources import Resources, open_s3_client
from service.routes import health, images

log = logging.getLogger(__name__)

DESCRIPTION = """
Upload images straight to S3 and get validated renditions back.

1. `POST /v1/images` declares an upload and returns a pre-signed **upload ticket**.
2. The client sends the bytes to the ticket's URL (never through this API). S3 itself refuses
   a body larger than declared or of another content type.
3. A worker validates the image and writes its renditions; poll `GET /v1/images/{id}` until
   `status` is `ready` (renditions listed with URLs) or `failed` (with an error `code`).
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ApiSettings = app.state.settings
    async with AsyncExitStack() as stack:
        engine = create_engine(settings)
        stack.push_async_callback(engine.dispose)
        await require_migrated(engine)
        s3 = await open_s3_client(stack, settings, settings.aws_endpoint_url)
        presigner = s3
        if settings.aws_public_endpoint_url:
            presigner = await open_s3_client(stack, settings, settings.aws_public_endpoint_url)
        app.state.resources = Resources(
            settings=settings,
            engine=engine,
            sessions=create_sessionmaker(engine),
            s3=s3,
            presigner=presigner,
        )
        log.info("picforge API ready: uploads=%s", settings.uploads_bucket)
        yield


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    app = FastAPI(
        title="picforge",
        version="0.1.0",
        summary="Image uploads straight to S3, validated renditions back.",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings or ApiSettings()
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(images.router, prefix="/v1")
    return app
