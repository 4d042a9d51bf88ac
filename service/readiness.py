"""Whether the API's dependencies answer, checked at most once per interval.

Load balancers and orchestrators call `/readyz` often, and anyone may (it needs no key). So the
checks (a `SELECT 1`, a `HeadBucket` per bucket) run at most once per `fresh_s`, one at a time,
and every request in between gets the last answer: a flood of `/readyz` costs the dependencies
one check per interval. The database check has a connection of its own (`open_readiness`), never
one of the pool requests use. An outage shows within `fresh_s` plus the checks' timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import text

from service.config import ApiSettings
from service.db import create_engine

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0

Check = Callable[[], Awaitable[object]]


class Readiness:
    def __init__(self, checks: Mapping[str, Check], *, fresh_s: float) -> None:
        self._checks = checks
        self._fresh_s = fresh_s
        self._lock = asyncio.Lock()
        self._unreachable: list[str] = []
        self._checked_at: float | None = None
        self.runs = 0  # how many times the checks ran, for tests and logs

    async def unreachable(self) -> list[str]:
        """The names of the dependencies that did not answer, as of at most `fresh_s` ago."""
        if self._is_fresh():
            return self._unreachable
        async with self._lock:  # the first request checks; the others wait for its answer
            if not self._is_fresh():
                self._unreachable = await self._run()
                self._checked_at = asyncio.get_running_loop().time()
        return self._unreachable

    def _is_fresh(self) -> bool:
        now = asyncio.get_running_loop().time()
        return self._checked_at is not None and now - self._checked_at < self._fresh_s

    async def _run(self) -> list[str]:
        self.runs += 1
        results = await asyncio.gather(
            *(asyncio.wait_for(check(), CHECK_TIMEOUT_S) for check in self._checks.values()),
            return_exceptions=True,
        )
        failed = []
        for name, result in zip(self._checks, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("readiness: %s unreachable: %r", name, result)
                failed.append(name)
        return failed


def open_readiness(stack: AsyncExitStack, settings: ApiSettings, s3: S3Client) -> Readiness:
    """The API's checks; the database's on an engine of one connection, closed with `stack`."""
    engine = create_engine(settings, pool_size=1)
    stack.push_async_callback(engine.dispose)

    async def check_database() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return Readiness(
        {
            "database": check_database,
            "uploads bucket": partial(s3.head_bucket, Bucket=settings.uploads_bucket),
            "renditions bucket": partial(s3.head_bucket, Bucket=settings.renditions_bucket),
        },
        fresh_s=settings.readiness_cache_s,
    )
