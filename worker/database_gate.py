"""While the database cannot be reached, the worker stops taking messages.

Every receive counts against a message's allowed deliveries, and a failure that is the
database's (down, failing over, refusing a rotated password) says nothing about the image. So
when a delivery fails with a connection error and a probe confirms that the database does not
answer (an S3 socket error is no reason to stop), the gate closes: the consumer receives nothing
until a probe (`SELECT 1`, over the same pool and the same login) succeeds, backing off up to
`MAX_PROBE_INTERVAL_S`. A probe that gets no answer in time fails, so a database that answers
nothing at all (a black-holed route) closes the gate too, and never holds the worker. A message
already on its last delivery is sent to the queue again as a new message (worker.delivery), so
an outage never dead-letters an image.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db import is_database_unavailable

log = logging.getLogger(__name__)

FIRST_PROBE_INTERVAL_S = 0.5
MAX_PROBE_INTERVAL_S = 10.0


class DatabaseGate:
    def __init__(self, engine: AsyncEngine, *, login_timeout_s: float) -> None:
        self._engine = engine
        # A probe may log in first (within `login_timeout_s`), then waits as long again for
        # its SELECT 1. Unbounded, a probe meeting a silent database waited until the kernel
        # gave up on TCP, about 15 minutes, and the delivery or the consumer behind it too.
        self._probe_timeout_s = 2 * login_timeout_s
        self._open = asyncio.Event()
        self._open.set()

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def close(self) -> None:
        if self._open.is_set():
            log.warning("the database is unavailable: no messages are received until it answers")
        self._open.clear()

    async def wait_open(self) -> None:
        """Return at once if open; else probe until the database answers, then open."""
        interval = FIRST_PROBE_INTERVAL_S
        while not self._open.is_set():
            await asyncio.sleep(interval)
            if await self.probe():
                log.info("the database answers again: receiving messages")
                self._open.set()
                return
            interval = min(interval * 2, MAX_PROBE_INTERVAL_S)

    async def probe(self) -> bool:
        """Whether the database answers now (over the same pool and login as the work)."""
        try:
            async with asyncio.timeout(self._probe_timeout_s), self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as error:  # TimeoutError included: an OSError, so no traceback
            if not is_database_unavailable(error):
                log.exception("database probe failed")
            return False
        return True
