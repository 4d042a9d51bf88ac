"""The API application: `create_app()` builds it, the lifespan owns every connection."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from service import VERSION
from service.aws import open_s3_client, open_sqs_client
from service.body_limit import BodyLimit
from service.cdn import open_cdn
from service.config import ApiSettings
from service.db import (
    autocommit,
    create_engine,
    create_sessionmaker,
    require_migrated_if_reachable,
)
from service.deps import refuse_inactive_key
from service.docs import install_docs
from service.error_handlers import install_error_handlers
from service.in_flight import InFlight
from service.openapi import install_openapi
from service.readiness import open_readiness
from service.resources import Resources
from service.routes import demo, health, images, multipart

log = logging.getLogger(__name__)

DESCRIPTION = """
Upload images straight to S3 and get validated renditions back.

1. `POST /v1/images` declares an upload and returns a pre-signed **upload ticket**.
2. The client sends the bytes to the ticket's URL (never through this API). S3 itself refuses
   a body of another content type, or larger than declared.
3. A worker validates the image and writes its renditions; poll `GET /v1/images/{id}` until
   `status` is `ready` (renditions listed with URLs) or `failed` (with an error `code`).

**Authentication.** Every `/v1` route wants `Authorization: Bearer <API key>`. Images belong to
the owner of the key that created them; another owner's image answers exactly like a missing one
(`404 image_not_found`).

**Errors.** Every error is an RFC 9457 `application/problem+json` document (the `Problem`
schema) with a stable machine-readable `code`; branch on `code`, never on the text.

**Retries.** Send an `Idempotency-Key` with `POST /v1/images` to retry it safely. Every other
route is safe to retry as it stands.

**Lists** are cursor-paginated: follow `next_cursor` until it is `null`.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Read here rather than in create_app, so the app can be built (for its OpenAPI document)
    # without any configuration.
    settings: ApiSettings = app.state.settings or ApiSettings()
    app.state.settings = settings
    async with AsyncExitStack() as stack:
        engine = create_engine(settings, command_timeout_s=settings.db_command_timeout_s)
        stack.push_async_callback(engine.dispose)
        if not await require_migrated_if_reachable(engine):
            log.warning(
                "the database is unavailable: requests that need it answer 503 until it answers"
            )
        s3 = await open_s3_client(stack, settings)
        presigner = s3
        if settings.aws_public_endpoint_url:
            presigner = await open_s3_client(stack, settings, settings.aws_public_endpoint_url)
        app.state.resources = Resources(
            settings=settings,
            engine=engine,
            statements=autocommit(engine),
            sessions=create_sessionmaker(engine),
            s3=s3,
            presigner=presigner,
            sqs=await open_sqs_client(stack, settings),
            readiness=open_readiness(stack, settings, s3),
            cdn=await open_cdn(stack, settings, settings.cdn_distribution_id),
            in_flight=(
                InFlight(settings.max_in_flight_per_owner) if settings.limits_enabled else None
            ),
        )
        # What start-up made (modules, schemas, clients: some 140k objects) lives as long as
        # the process; frozen, the collector no longer walks it. Unfrozen, a full collection
        # took 40 ms and paused every request in flight: most of a create's p99 under load.
        gc.freeze()
        log.info("picforge API ready: uploads=%s", settings.uploads_bucket)
        yield


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    app = FastAPI(
        title="picforge",
        version=VERSION,
        summary="Image uploads straight to S3, validated renditions back.",
        description=DESCRIPTION,
        license_info={"name": "MIT", "identifier": "MIT"},
        lifespan=lifespan,
        # Served by install_docs from this API's own copies of the scripts, never a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app, before_validation_error=refuse_inactive_key)
    app.add_middleware(BodyLimit)
    app.include_router(health.router)
    app.include_router(images.router, prefix="/v1")
    app.include_router(multipart.router, prefix="/v1")
    app.include_router(demo.router)
    install_docs(app)
    install_openapi(app)
    return app
