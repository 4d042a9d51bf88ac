"""The worker process: open every connection once, consume until told to stop.

SIGTERM (what ECS sends) or SIGINT stops the receiving; the images in flight get
`PICFORGE_WORKER_DRAIN_S` to finish, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack
from dataclasses import dataclass

from service.aws import open_s3_client, open_sqs_client
from service.db import (
    SchemaNotMigrated,
    create_engine,
    create_sessionmaker,
    require_migrated_if_reachable,
)
from service.startup import check_dependencies, exit_on_bad_configuration, load_settings
from worker.abandoned import abandoned_after_s, failing_abandoned_images
from worker.config import WorkerSettings
from worker.consumer import Consumer, ConsumerOptions
from worker.costs import MiB, RenderBudget
from worker.database_gate import DatabaseGate
from worker.delivery import Delivery, DeliveryOptions
from worker.handlers import RenderContext
from worker.messages import MessageQueue
from worker.metrics import Metrics
from worker.pool import RenderPool
from worker.reconcile import ReconcileContext
from worker.reconciling import reconciling
from worker.renditions import Limits
from worker.sweep import SweepOptions, sweeping

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Worker:
    queue: MessageQueue
    delivery: Delivery
    consumer: Consumer
    # Seconds `processing` after which an image is failed as abandoned; None: no dead-letter
    # queue, so a message is retried until it expires and no image is ever abandoned.
    abandoned_after_s: float | None


async def open_worker(stack: AsyncExitStack, settings: WorkerSettings, metrics: Metrics) -> Worker:
    """Open every connection and the render pool, closed when `stack` closes."""
    engine = create_engine(settings)
    stack.push_async_callback(engine.dispose)
    gate = DatabaseGate(engine, login_timeout_s=settings.db_connect_timeout_s)
    if not await require_migrated_if_reachable(engine):
        # Exiting would leave the images queued meanwhile to whatever restarts the process.
        gate.close()
    s3 = await open_s3_client(stack, settings)
    sqs = await open_sqs_client(stack, settings, long_polls=True)
    queue = MessageQueue(
        sqs, settings.queue_url, visibility_timeout_s=settings.worker_visibility_timeout_s
    )
    max_receive_count = settings.worker_max_receive_count or await queue.read_max_receive_count()
    if max_receive_count is None:
        log.warning(
            "the queue has no redrive policy: a failing message is retried until it expires, "
            "and its image is never marked failed"
        )
    budget = RenderBudget(
        memory_bytes=settings.render_memory_mb * MiB,
        cpu_base_s=settings.render_cpu_s,
        cpu_per_megapixel_s=settings.render_cpu_s_per_mp,
        cpu_max_s=settings.render_cpu_max_s,
    )
    pool = RenderPool(
        settings.worker_render_processes,
        memory_bytes=budget.memory_bytes,
        preload=("worker.render_job",),
        on_kill=metrics.render_process_replaced,
    )
    stack.callback(pool.close)
    context = RenderContext(
        sessions=create_sessionmaker(engine),
        s3=s3,
        pool=pool,
        uploads_bucket=settings.uploads_bucket,
        renditions_bucket=settings.renditions_bucket,
        presets=settings.presets,
        limits=Limits(
            max_pixels=settings.max_pixels,
            memory_bytes=budget.memory_bytes,
            max_jpeg_scans=settings.max_jpeg_scans,
            max_metadata_bytes=settings.max_metadata_bytes,
        ),
        budget=budget,
    )
    delivery = Delivery(
        queue,
        context,
        metrics,
        DeliveryOptions(
            job_timeout_s=settings.worker_job_timeout_s, max_receive_count=max_receive_count
        ),
        gate,
    )
    options = ConsumerOptions(
        concurrency=settings.worker_concurrency,
        wait_s=settings.worker_wait_s,
        drain_s=settings.worker_drain_s,
    )
    abandoned = None
    if max_receive_count is not None:
        abandoned = abandoned_after_s(
            max_receive_count=max_receive_count,
            job_timeout_s=settings.worker_job_timeout_s,
            visibility_s=settings.worker_visibility_timeout_s,
        )
    log.info(
        "worker consuming %s: concurrency=%d render_processes=%d (%d MiB, %.0f-%.0f s CPU "
        "each) visibility=%d s max_receive_count=%s abandoned_after=%s s presets=%s",
        settings.queue_url,
        settings.worker_concurrency,
        settings.worker_render_processes,
        settings.render_memory_mb,
        budget.cpu_base_s,
        budget.cpu_max_s,
        settings.worker_visibility_timeout_s,
        max_receive_count,
        abandoned,
        ",".join(preset.name for preset in settings.presets),
    )
    consumer = Consumer(queue, delivery, metrics, options, gate)
    return Worker(queue, delivery, consumer, abandoned)


async def run_worker(
    settings: WorkerSettings, stop: asyncio.Event, *, metrics: Metrics | None = None
) -> Metrics:
    """Consume until `stop` is set, then drain. Returns what it counted."""
    metrics = metrics or Metrics()
    async with AsyncExitStack() as stack:
        worker = await open_worker(stack, settings, metrics)
        if settings.worker_metrics_port is not None:
            _, stop_serving = metrics.serve(
                settings.worker_metrics_host, settings.worker_metrics_port
            )
            stack.callback(stop_serving)
        await stack.enter_async_context(
            failing_abandoned_images(
                worker.delivery.context.sessions,
                metrics,
                idle_s=worker.abandoned_after_s,
                every_s=settings.worker_visibility_timeout_s,
            )
        )
        await stack.enter_async_context(
            sweeping(
                worker.delivery.context.sessions,
                worker.delivery.context.s3,
                metrics,
                SweepOptions(
                    uploads_bucket=settings.uploads_bucket,
                    upload_expires_after_s=settings.presign_expires_s + settings.upload_grace_s,
                    idempotency_key_ttl_s=settings.idempotency_key_ttl_s,
                    every_s=settings.worker_sweep_every_s,
                ),
            )
        )
        context = worker.delivery.context
        await stack.enter_async_context(
            reconciling(
                ReconcileContext(
                    sessions=context.sessions,
                    s3=context.s3,
                    sqs=worker.queue.sqs,
                    queue_url=worker.queue.url,
                    uploads_bucket=context.uploads_bucket,
                    renditions_bucket=context.renditions_bucket,
                    presets=context.presets,
                    grace_s=settings.reconcile_grace_s,
                ),
                metrics,
                every_s=settings.worker_reconcile_every_s,
            )
        )
        await worker.consumer.run(stop)
    return metrics


async def run_until_signalled(settings: WorkerSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run_worker(settings, stop)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    with exit_on_bad_configuration("worker"):
        settings = load_settings(WorkerSettings)
        asyncio.run(check_dependencies(settings, settings, queue_url=settings.queue_url))
    try:
        asyncio.run(run_until_signalled(settings))
    except SchemaNotMigrated as exc:
        raise SystemExit(f"picforge worker: {exc}") from None
