"""Images no delivery will finish, marked `failed` rather than left `processing` forever.

The worker records `processing_failed` itself when it gives up on the last delivery the queue
allows. It cannot when it dies on that delivery (killed, out of memory, its host gone) or when
the database is down right then: the queue dead-letters the message, and the image would stay
`processing`, its client polling forever. So every worker looks, now and then, for images
`processing` for longer than all of a message's deliveries could take, and fails them with
`processing_failed`: what a client would have seen had the last delivery lived to record it.
The look is one UPDATE, atomic, so any number of workers may run it at once.

A message that waited out a long backlog between deliveries may find its image failed this way;
it takes it up again and can still finish it, as a redrive from the dead-letter queue does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from worker import records
from worker.failures import FAILURE_CODES
from worker.metrics import Metrics
from worker.periodic import log_failure

log = logging.getLogger(__name__)


def abandoned_after_s(
    *, max_receive_count: int, job_timeout_s: float, visibility_s: float
) -> float:
    """Twice the longest that all of a message's deliveries can keep its image `processing`:
    each may work up to the job timeout, then leave the message hidden up to the visibility
    timeout before the next."""
    return 2 * max_receive_count * (job_timeout_s + visibility_s)


@asynccontextmanager
async def failing_abandoned_images(
    sessions: async_sessionmaker[AsyncSession],
    metrics: Metrics,
    *,
    idle_s: float | None,
    every_s: float,
) -> AsyncIterator[None]:
    """Look for abandoned images while the block runs; never when `idle_s` is None (no
    dead-letter queue: a message is retried until it expires)."""
    if idle_s is None:
        yield
        return
    looking = asyncio.create_task(
        fail_abandoned_images(sessions, metrics, idle_s=idle_s, every_s=every_s)
    )
    try:
        yield
    finally:
        looking.cancel()
        await asyncio.wait([looking])


async def fail_abandoned_images(
    sessions: async_sessionmaker[AsyncSession],
    metrics: Metrics,
    *,
    idle_s: float,
    every_s: float,
) -> None:
    """Look every `every_s` seconds, the first time at once, until cancelled."""
    while True:
        try:
            failed = await records.fail_abandoned(
                sessions, idle_s=idle_s, message=FAILURE_CODES[records.PROCESSING_FAILED]
            )
        except Exception as error:  # the next look tries again
            log_failure(log, "could not look for abandoned images", error)
        else:
            for image_id in failed:
                log.error(
                    "image_id=%s failed processing_failed: processing for over %.0f s",
                    image_id,
                    idle_s,
                )
                metrics.image_failed(records.PROCESSING_FAILED)
        await asyncio.sleep(every_s)
