"""The worker as a process: long polling within its concurrency, a heartbeat for long jobs,
SIGTERM that drains, SIGKILL that loses nothing, a render process that dies, its metrics."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import pytest

from devstack.ports import free_port
from tests.conftest import RenderGate
from tests.worker.conftest import (
    THUMB_ONLY,
    Images,
    StartWorker,
    WorkerProcess,
    eventually,
    png_bytes,
)
from tests.worker.paused_render import render_when_released, started_path
from worker import handlers

MESSAGES = "picforge_worker_messages_total"
SpawnWorker = Callable[..., WorkerProcess]


async def test_consumer_sigterm_finishes_image_in_flight_and_exits_zero(
    images: Images, spawn_worker: SpawnWorker, hopper_png: bytes
) -> None:
    worker = spawn_worker(worker_drain_s=30)
    image_id = await images.create(hopper_png)
    await images.wait_for(image_id, "processing")

    worker.signal(signal.SIGTERM)
    await eventually(lambda: "draining 1 messages" in worker.log, what="the drain")
    worker.release_renders()

    assert await worker.wait(timeout_s=30) == 0, worker.log
    image = await images.get(image_id)
    assert image is not None and image.status == "ready", worker.log
    assert "released=0" in worker.log
    assert await images.queue_counts() == (0, 0)


async def test_consumer_sigterm_past_drain_releases_image_to_next_worker(
    images: Images, spawn_worker: SpawnWorker, start_worker: StartWorker, hopper_png: bytes
) -> None:
    worker = spawn_worker(worker_drain_s=0.2, worker_visibility_timeout_s=60)
    image_id = await images.create(hopper_png)
    await images.wait_for(image_id, "processing")

    started = time.monotonic()
    worker.signal(signal.SIGTERM)  # its render is held past the drain deadline

    assert await worker.wait(timeout_s=15) == 0, worker.log
    assert time.monotonic() - started < 10, "the drain deadline was not kept"
    assert "released=1" in worker.log, worker.log
    # Released, not left hidden for its 60 s: the next worker takes it at once.
    await start_worker(presets=THUMB_ONLY)
    image = await images.wait_for(image_id, "ready", timeout_s=10)
    assert [r.name for r in image.renditions] == ["thumb"]


async def test_consumer_sigkill_mid_image_leaves_message_for_next_worker(
    images: Images, spawn_worker: SpawnWorker, start_worker: StartWorker, hopper_png: bytes
) -> None:
    worker = spawn_worker(worker_visibility_timeout_s=2)
    image_id = await images.create(hopper_png)
    await images.wait_for(image_id, "processing")

    worker.kill_everything()

    assert await worker.wait(timeout_s=10) == -signal.SIGKILL
    next_worker = await start_worker(presets=THUMB_ONLY)
    image = await images.wait_for(image_id, "ready")
    assert [r.name for r in image.renditions] == ["thumb"]
    # The message is deleted, and counted, after the record is ready.
    assert await eventually(lambda: _queue_is_empty(images), what="an empty queue")
    await eventually(lambda: next_worker.count(MESSAGES, outcome="done") == 1, what="done")


async def _queue_is_empty(images: Images) -> bool:
    return await images.queue_counts() == (0, 0)


async def test_consumer_heartbeat_keeps_long_job_from_second_delivery(
    images: Images, start_worker: StartWorker, hopper_png: bytes, held_renders: RenderGate
) -> None:
    # Visible again after 1 s unless renewed; the job is held for 3; room for a second copy.
    worker = await start_worker(worker_visibility_timeout_s=1, worker_concurrency=2)
    image_id = await images.create(hopper_png)
    await asyncio.wait_for(held_renders.started.wait(), timeout=30)
    await asyncio.sleep(3)
    held_renders.release.set()

    await images.wait_for(image_id, "ready")

    job_s = worker.count("picforge_worker_processing_seconds_sum", result="ready")
    assert job_s > 2, "the job was not longer than two visibility timeouts"
    assert worker.count("picforge_worker_images_processed_total") == 1
    assert worker.count("picforge_worker_messages_received_total") == 2  # the upload, S3's test


async def test_consumer_survives_render_process_death(
    images: Images,
    start_worker: StartWorker,
    hopper_png: bytes,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    release = tmp_path / "render.release"
    monkeypatch.setattr(handlers, "render_within_budget", partial(render_when_released, release))
    worker = await start_worker(worker_visibility_timeout_s=1)
    image_id = await images.create(hopper_png)
    await eventually(started_path(release).exists, what="a render under way")
    [render_process] = await eventually(multiprocessing.active_children, what="a render process")

    assert render_process.pid is not None
    os.kill(render_process.pid, signal.SIGKILL)

    await eventually(lambda: worker.count(MESSAGES, outcome="retried") == 1, what="a retry")
    assert worker.count("picforge_worker_render_processes_replaced_total", reason="died") == 1
    assert not worker.task.done()
    release.touch()
    image = await images.wait_for(image_id, "ready", timeout_s=30)
    assert [r.name for r in image.renditions] == ["thumb"]


async def test_consumer_keeps_at_most_concurrency_images_in_flight(
    images: Images, start_worker: StartWorker
) -> None:
    worker = await start_worker(worker_concurrency=2)
    peak = 0.0

    def in_flight() -> float:
        nonlocal peak
        peak = max(peak, worker.count("picforge_worker_messages_in_flight"))
        return peak

    image_ids = [await images.create(png_bytes(400 + i, 300)) for i in range(6)]
    sampling = asyncio.create_task(eventually(lambda: in_flight() > 2, timeout_s=60))
    for image_id in image_ids:
        await images.wait_for(image_id, "ready")
    sampling.cancel()

    assert peak == 2
    assert worker.count("picforge_worker_images_processed_total") == 6


async def test_consumer_serves_metrics_after_processing(
    images: Images, start_worker: StartWorker, hopper_png: bytes
) -> None:
    port = free_port()
    await start_worker(worker_metrics_host="127.0.0.1", worker_metrics_port=port)
    good = await images.create(hopper_png)
    bad = await images.create(b"\x89PNG\r\n\x1a\n not really")
    await images.wait_for(good, "ready")
    await images.wait_for(bad, "failed")

    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{port}/metrics")

    assert response.status_code == 200
    samples = dict(
        line.rsplit(" ", 1) for line in response.text.splitlines() if not line.startswith("#")
    )
    assert float(samples["picforge_worker_images_processed_total"]) == 1
    assert float(samples['picforge_worker_images_failed_total{code="corrupt_image"}']) == 1
    assert float(samples['picforge_worker_processing_seconds_count{result="ready"}']) == 1
    assert float(samples['picforge_worker_messages_total{outcome="done"}']) == 2
    assert float(samples["picforge_worker_messages_in_flight"]) == 0
