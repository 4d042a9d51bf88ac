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

import aioboto3
from sqlalchemy import text

from service.db import SchemaNotMigrated, create_engine, create_sessionmaker, require_migrated
from service.resources import open_s3_client
from worker.abandoned import abandoned_after_s, failing_abandoned_images
from worker.config import WorkerSettings
from worker.consumer import Consumer, ConsumerOptions
from worker.delivery import Delivery, DeliveryOptions
from worker.handlers import RenderContext
from worker.messages import MessageQueue
from worker.metrics import Metrics
from worker.outages import Dependencies
from worker.pool import RenderPool
from worker.renditions import Limits

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
    await require_migrated(engine)
    s3 = await open_s3_client(stack, settings, settings.aws_endpoint_url)
    sqs = await stack.enter_async_context(
        aioboto3.Session().client(
            "sqs", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url
        )
    )
    queue = MessageQueue(
        sqs, settings.queue_url, visibility_timeout_s=settings.worker_visibility_timeout_s
    )
    max_receive_count = settings.worker_max_receive_count or await queue.read_max_receive_count()
    if max_receive_count is None:
        log.warning(
            "the queue has no redrive policy: a failing message is retried until it expires, "
            "and its image is never marked failed"
        )
    pool = RenderPool(settings.worker_render_processes, on_restart=metrics.pool_restarted)
    stack.callback(pool.close)
    context = RenderContext(
        sessions=create_sessionmaker(engine),
        s3=s3,
        pool=pool,
        uploads_bucket=settings.uploads_bucket,
        renditions_bucket=settings.renditions_bucket,
        presets=settings.presets,
        limits=Limits(max_pixels=settings.max_pixels),
    )

    async def probe_dependencies() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        await s3.head_bucket(Bucket=settings.uploads_bucket)

    dependencies = Dependencies(probe_dependencies, on_change=metrics.dependencies_changed)
    stack.push_async_callback(dependencies.close)
    delivery = Delivery(
        queue,
        context,
        metrics,
        DeliveryOptions(
            job_timeout_s=settings.worker_job_timeout_s, max_receive_count=max_receive_count
        ),
        dependencies,
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
        "worker consuming %s: concurrency=%d render_processes=%d visibility=%d s "
        "max_receive_count=%s abandoned_after=%s s presets=%s",
        settings.queue_url,
        settings.worker_concurrency,
        settings.worker_render_processes,
        settings.worker_visibility_timeout_s,
        max_receive_count,
        abandoned,
        ",".join(preset.name for preset in settings.presets),
    )
    return Worker(queue, delivery, Consumer(queue, delivery, metrics, options), abandoned)


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
    settings = WorkerSettings()
    try:
        asyncio.run(run_until_signalled(settings))
    except SchemaNotMigrated as exc:
        raise SystemExit(f"picforge worker: {exc}") from None
