"""What a user or S3 does while the worker has a message in hand: the original vanishes, the
image is deleted, a reprocess races a DELETE. Each ends in a recorded state, and S3 holds
nothing that no record owns."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from service.storage import erase_original
from tests.reliability.conftest import Deployment, Figures, sample_png, settle, until_processing
from tests.reliability.traffic import upload_batch

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]


async def test_original_deleted_before_worker_reaches_it_fails_original_missing(
    deployment: Deployment, figures: Figures
) -> None:
    deployment.worker.stop()
    [image_id] = await upload_batch(deployment, sample_png(64, 48), count=1)
    # Every version: on a versioned bucket a plain delete leaves the bytes behind a marker.
    await erase_original(
        deployment.s3, bucket=deployment.uploads_bucket, image_id=uuid.UUID(image_id)
    )
    deployment.worker.start()

    records = await settle(deployment)

    assert records[image_id]["status"] == "failed"
    assert records[image_id]["error"]["code"] == "original_missing"
    figures.add(
        fault="original deleted from S3 before the worker reached it",
        behaviour="failed original_missing",
        recovery_s=None,
        images=1,
        lost=0,
        stuck=0,
    )


async def test_image_deleted_while_its_message_is_in_flight_leaves_nothing(
    deployment: Deployment, figures: Figures
) -> None:
    image_ids = await upload_batch(deployment, sample_png(4000, 3000), count=4)
    await until_processing(deployment)
    async with deployment.client() as http:
        for image_id in image_ids:
            assert (await http.delete(f"/v1/images/{image_id}")).status_code == 204

    records = await settle(deployment)

    assert records == dict.fromkeys(image_ids)  # every one gone, as asked
    figures.add(
        fault="image deleted through the API mid-render",
        behaviour="renditions written after the DELETE were taken back",
        recovery_s=None,
        images=len(image_ids),
        lost=0,
        stuck=0,
    )


async def test_reprocess_racing_delete_leaves_nothing(
    deployment: Deployment, figures: Figures
) -> None:
    image_ids = await upload_batch(deployment, sample_png(1600, 1200), count=4)
    await settle(deployment)
    async with deployment.client() as http:
        for image_id in image_ids:
            reprocess, delete = await asyncio.gather(
                http.post(f"/v1/images/{image_id}/reprocess"),
                http.delete(f"/v1/images/{image_id}"),
            )
            assert reprocess.status_code in (202, 404), reprocess.text
            assert delete.status_code == 204, delete.text
    # Let the reprocess jobs that got queued reach the worker.
    await asyncio.sleep(3)

    records = await settle(deployment)

    assert records == dict.fromkeys(image_ids)
    figures.add(
        fault="reprocess racing a DELETE",
        behaviour="the DELETE won; the queued jobs found no image",
        recovery_s=None,
        images=len(image_ids),
        lost=0,
        stuck=0,
    )
