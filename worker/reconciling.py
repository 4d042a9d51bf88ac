"""Reconcile (`worker.reconcile`) as a periodic duty of the worker, one worker at a time, and
as the operator's `picforge reconcile [--dry-run]`, which prints every fix."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from sqlalchemy import text

from service.aws import open_s3_client, open_sqs_client
from service.db import create_engine, create_sessionmaker, require_migrated
from worker.config import WorkerSettings
from worker.metrics import Metrics
from worker.periodic import log_failure
from worker.reconcile import Fix, ReconcileContext, reconcile

log = logging.getLogger(__name__)

# Any number, the same in every worker: only one reconciles at a time.
ADVISORY_LOCK = 0x70696366  # "picf"


async def reconcile_if_alone(context: ReconcileContext, metrics: Metrics) -> list[Fix] | None:
    """Reconcile unless another worker is at it (None then).

    The lock is its connection's, taken outside any transaction: one left open for the run
    would sit idle while S3 is listed, and the app role's idle-in-transaction timeout
    (migration 0010) would end it after a minute, and the lock with it, mid-run."""
    async with context.sessions() as session:
        connection = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        if not await connection.scalar(
            text("SELECT pg_try_advisory_lock(:id)"), {"id": ADVISORY_LOCK}
        ):
            return None
        try:
            return await reconcile(context, metrics)
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": ADVISORY_LOCK})


@asynccontextmanager
async def reconciling(
    context: ReconcileContext, metrics: Metrics, *, every_s: float
) -> AsyncIterator[None]:
    """Reconcile every `every_s` seconds while the block runs, the first time after one period:
    a worker starting is no reason to walk everything."""

    async def reconcile_forever() -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await reconcile_if_alone(context, metrics)
            except Exception as error:  # the next period tries again
                log_failure(log, "reconcile failed", error)

    task = asyncio.create_task(reconcile_forever())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])


async def open_reconcile_context(
    stack: AsyncExitStack, settings: WorkerSettings
) -> ReconcileContext:
    engine = create_engine(settings)
    stack.push_async_callback(engine.dispose)
    await require_migrated(engine)
    return ReconcileContext(
        sessions=create_sessionmaker(engine),
        s3=await open_s3_client(stack, settings),
        sqs=await open_sqs_client(stack, settings),
        queue_url=settings.queue_url,
        uploads_bucket=settings.uploads_bucket,
        renditions_bucket=settings.renditions_bucket,
        presets=settings.presets,
        grace_s=settings.reconcile_grace_s,
    )


async def run_reconcile(settings: WorkerSettings, *, dry_run: bool) -> list[Fix]:
    """Once, now, printing each fix: what `picforge reconcile` does."""

    def report(fix: Fix) -> None:
        print(("would fix " if dry_run else "fixed ") + fix.describe())  # noqa: T201

    async with AsyncExitStack() as stack:
        context = await open_reconcile_context(stack, settings)
        fixes = await reconcile(context, Metrics(), dry_run=dry_run, report=report)
    counts: dict[str, int] = {}
    for fix in fixes:
        counts[fix.kind] = counts.get(fix.kind, 0) + 1
    summary = ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items())) or "none"
    print(("drift found (dry run, nothing changed): " if dry_run else "drift fixed: ") + summary)  # noqa: T201
    return fixes


def main(*, dry_run: bool) -> None:
    asyncio.run(run_reconcile(WorkerSettings(), dry_run=dry_run))
