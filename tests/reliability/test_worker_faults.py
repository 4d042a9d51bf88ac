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
