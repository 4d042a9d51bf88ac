"""Liveness and readiness: unauthenticated and cheap, since load balancers call them often."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from service.deps import ResourcesDep
from service.errors import DependencyUnavailable, problem_response

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

READINESS_TIMEOUT_S = 2.0


class HealthOut(BaseModel):
    status: str


@router.get("/healthz", operation_id="healthz", summary="The process is alive")
async def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="The database and both buckets are reachable",
    responses={
        503: problem_response(
            "A dependency is unreachable; `detail` names which.",
            DependencyUnavailable("unreachable: uploads bucket"),
        )
    },
)
async def readyz(resources: ResourcesDep) -> HealthOut:
    settings = resources.settings

    async def check_database() -> None:
        async with resources.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    checks = {
        "database": check_database(),
        "uploads bucket": resources.s3.head_bucket(Bucket=settings.uploads_bucket),
        "renditions bucket": resources.s3.head_bucket(Bucket=settings.renditions_bucket),
    }
    results = await asyncio.gather(
        *(asyncio.wait_for(check, READINESS_TIMEOUT_S) for check in checks.values()),
        return_exceptions=True,
    )
    failed = []
    for name, result in zip(checks, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("readiness: %s unreachable: %r", name, result)
            failed.append(name)
    if failed:
        raise DependencyUnavailable(f"unreachable: {', '.join(failed)}")
    return HealthOut(status="ok")
