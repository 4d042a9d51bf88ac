"""The worker process: open every connection once, consume until told to stop."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor
from contextlib import AsyncExitStack

import aioboto3

from service.db import SchemaNotMigrated, create_engine, create_sessionmaker, require_migrated
from service.resources import open_s3_client
from worker.config import WorkerSettings
from worker.consumer import Consumer, ConsumerOptions
from worker.handlers import RenderContext
from worker.renditions import Limits, Preset

log = logging.getLogger(__name__)

THUMB = Preset(name="thumb", width=128, height=128)


async def run_worker(settings: WorkerSettings, stop: asyncio.Event) -> None:
    async with AsyncExitStack() as stack:
        engine = create_engine(settings)
        stack.push_async_callback(engine.dispose)
        await require_migrated(engine)
        s3 = await open_s3_client(stack, settings, settings.aws_endpoint_url)
        sqs = await stack.enter_async_context(
            aioboto3.Session().client(
                "sqs", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url
            )
        )
        # spawn, not fork: forking a process that runs an event loop and holds sockets is unsafe.
        pool = ProcessPoolExecutor(
            settings.worker_render_processes, mp_context=multiprocessing.get_context("spawn")
        )
        stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        context = RenderContext(
            sessions=create_sessionmaker(engine),
            s3=s3,
            pool=pool,
            uploads_bucket=settings.uploads_bucket,
            renditions_bucket=settings.renditions_bucket,
            presets=(THUMB,),
            limits=Limits(max_pixels=settings.max_pixels),
        )
        options = ConsumerOptions(
            queue_url=settings.queue_url,
            concurrency=settings.worker_concurrency,
            wait_s=settings.worker_wait_s,
            job_timeout_s=settings.worker_job_timeout_s,
            drain_s=settings.worker_drain_s,
        )
        log.info("worker consuming %s", settings.queue_url)
        await Consumer(sqs, context, options).run(stop)


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
