"""Telling an outage of PostgreSQL or S3 from every other failure, and waiting one out.

A delivery that fails because a dependency is unreachable says nothing about its image, yet
each one uses up one of the deliveries the queue allows before it dead-letters the message.
Received at the usual pace through a 30 s outage, every image uploaded meanwhile would be
dead-lettered, and with the database down not even marked failed. So the first delivery that
meets an outage stops the receiving: `Dependencies` probes PostgreSQL and the uploads bucket
every second, and the consumer receives again once both answer. An outage then costs each
message one delivery, whatever its length.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
import botocore.exceptions
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

PROBE_EVERY_S: Final = 1.0

# What the drivers raise when the server is unreachable, went away, or refuses logins for now:
# a socket error, a connection asyncpg or botocore found broken, an operator's shutdown.
_OUTAGE_ERRORS: Final = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InterfaceError,
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
)


def is_outage(error: BaseException) -> bool:
    """Whether `error`, or what it was raised from, says a dependency is unreachable."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, _OUTAGE_ERRORS):
            return True
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Dependencies:
    """Up until a delivery reports an outage; then down until `probe` succeeds again."""

    def __init__(
        self,
        probe: Callable[[], Awaitable[object]],
        *,
        on_change: Callable[[bool], None] = lambda up: None,
        every_s: float = PROBE_EVERY_S,
    ) -> None:
        self._probe = probe
        self._on_change = on_change
        self._every_s = every_s
        self._up = asyncio.Event()
        self._up.set()
        self._probing: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        return self._up.is_set()

    def report_outage(self, error: BaseException) -> None:
        if not self.up:
            return
        log.error("a dependency is unreachable (%r): receiving paused until it answers", error)
        self._up.clear()
        self._on_change(False)
        self._probing = asyncio.create_task(self._probe_until_up(), name="dependency-probe")

    async def wait_until_up(self) -> None:
        await self._up.wait()

    async def _probe_until_up(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            await asyncio.sleep(self._every_s)
            try:
                await asyncio.wait_for(self._probe(), timeout=self._every_s * 5)
            except Exception as exc:
                log.info("dependencies still unreachable: %r", exc)
                continue
            break
        log.warning(
            "dependencies answer again after %.1f s: receiving resumed", loop.time() - started
        )
        self._up.set()
        self._on_change(True)

    async def close(self) -> None:
        if self._probing is not None:
            self._probing.cancel()
            await asyncio.wait([self._probing])
