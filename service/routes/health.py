"""Liveness and readiness: unauthenticated and cheap, since load balancers call them often."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from service.deps import ResourcesDep
from service.errors import DependencyUnavailable, problem_response

router = APIRouter(tags=["health"])


class HealthOut(BaseModel):
    status: str


@router.get("/healthz", operation_id="healthz", summary="The process is alive")
async def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="The database and both buckets are reachable",
    description="Checked at most once per `PICFORGE_READINESS_CACHE_S` (2 s by default); "
    "requests in between get the last answer.",
    responses={
        503: problem_response(
            "A dependency is unreachable; `detail` names which.",
            DependencyUnavailable("unreachable: uploads bucket"),
        )
    },
)
async def readyz(resources: ResourcesDep) -> HealthOut:
    failed = await resources.readiness.unreachable()
    if failed:
        raise DependencyUnavailable(f"unreachable: {', '.join(failed)}")
    return HealthOut(status="ok")
