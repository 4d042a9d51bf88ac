"""The worker broken mid-batch: killed outright, or its database connections cut. Whatever it
was doing is done again by the next delivery, and every image still ends `ready`."""

from __future__ import annotations

import time

import pytest

from tests.reliability.conftest import Deployment, Figures, sample_png, settle, until_processing
from tests.reliability.traffic import upload_batch

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

BATCH = 4


@pytest.fixture(scope="module")
def large_png() -> bytes:
    """24 MP: long enough a render that the fault lands mid-image."""
    return sample_png(6000, 4000)


async def test_worker_sigkilled_mid_image_loses_nothing(
    deployment: Deployment, figures: Figures, large_png: bytes
) -> None:
    await upload_batch(deployment, large_png, count=BATCH)
    await until_processing(deployment)
    deployment.worker.kill()
    killed_at = time.monotonic()
    deployment.worker.start()

    records = await settle(deployment)

    assert {record["status"] for record in records.values()} == {"ready"}
    figures.add(
        fault="worker SIGKILLed mid-image",
        behaviour="its messages came back after the visibility timeout (5 s here) to a new worker",
        recovery_s=time.monotonic() - killed_at,
        images=len(records),
        lost=0,
        stuck=0,
    )


async def test_worker_database_connections_cut_mid_batch_loses_nothing(
    deployment: Deployment, figures: Figures, large_png: bytes
) -> None:
    await upload_batch(deployment, large_png, count=BATCH)
    await until_processing(deployment)
    cut = await deployment.cut_worker_connections()
    cut_at = time.monotonic()

    records = await settle(deployment)

    assert cut > 0
    assert {record["status"] for record in records.values()} == {"ready"}
    assert deployment.worker.running() and deployment.api.running()
    figures.add(
        fault=f"pg_terminate_backend on all {cut} connections mid-batch",
        behaviour="the deliveries that met a cut connection were retried; pools reconnected",
        recovery_s=time.monotonic() - cut_at,
        images=len(records),
        lost=0,
        stuck=0,
    )


async def test_render_child_killed_by_its_memory_cap_fails_the_image_and_the_next_is_ready(
    deployment: Deployment, figures: Figures
) -> None:
    # One 8192 px rendition of a 40 MP original needs more than a child capped at 400 MiB has:
    # the cap, not quarantine's estimate, is what stops it.
    deployment.restart_worker(
        PICFORGE_RENDER_MEMORY_MB="400",
        PICFORGE_PRESETS='[{"name": "huge", "width": 8192, "height": 8192, "quality": 90}]',
    )
    [over] = await upload_batch(deployment, sample_png(8000, 5000), count=1)
    started = time.monotonic()
    [after] = await upload_batch(deployment, sample_png(640, 480), count=1)

    records = await settle(deployment)

    assert records[over]["status"] == "failed"
    assert records[over]["error"]["code"] == "memory_limit_exceeded"
    assert records[after]["status"] == "ready"
    assert deployment.worker.running()
    assert "memory_limit_exceeded" in deployment.worker.log()
    figures.add(
        fault="a render child killed by its memory cap (400 MiB)",
        behaviour="failed memory_limit_exceeded at the first overrun; child replaced",
        recovery_s=time.monotonic() - started,
        images=2,
        lost=0,
        stuck=0,
    )
