"""Reconcile finds each kind of drift between S3 and the records, fixes each, and a dry run
changes nothing; the worker then finishes what it queued and nothing is left to fix."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections import Counter

from sqlalchemy import update

from service.jobs import reprocess_message
from service.models import Rendition
from service.storage import erase_original, erase_versions, original_key, renditions_prefix
from tests.conftest import REPO_ROOT
from tests.worker.conftest import THUMB_ONLY, Images, StartWorker, eventually, worker_environment
from worker.config import WorkerSettings
from worker.metrics import Metrics
from worker.reconcile import ReconcileContext, reconcile


def context_of(images: Images, settings: WorkerSettings) -> ReconcileContext:
    return ReconcileContext(
        sessions=images.sessions,
        s3=images.s3,
        sqs=images.sqs,
        queue_url=images.stack.queue_url,
        uploads_bucket=images.stack.names.uploads_bucket,
        renditions_bucket=images.stack.names.renditions_bucket,
        presets=THUMB_ONLY,
        grace_s=0,
    )


async def every_version(images: Images) -> list[str]:
    found = []
    for bucket in (images.stack.names.uploads_bucket, images.stack.names.renditions_bucket):
        listing = await images.s3.list_object_versions(Bucket=bucket)
        for entry in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]:
            found.append(f"{bucket}/{entry['Key']}@{entry['VersionId']}")
    return sorted(found)


async def make_drift(images: Images, ready: list[uuid.UUID]) -> dict[str, uuid.UUID]:
    """One of every kind of drift, on four ready images and beside them."""
    later, lost_rendition, lost_original, superseded = ready
    uploads, renditions = images.stack.names.uploads_bucket, images.stack.names.renditions_bucket
    stranger = uuid.uuid4()
    await images.s3.put_object(Bucket=uploads, Key=original_key(stranger), Body=b"x")
    await images.s3.put_object(Bucket=renditions, Key=f"renditions/{stranger}/t/a.webp", Body=b"")
    await images.s3.put_object(Bucket=uploads, Key=original_key(later), Body=b"a later upload")
    await erase_versions(images.s3, bucket=renditions, prefix=renditions_prefix(lost_rendition))
    await erase_original(images.s3, bucket=uploads, image_id=lost_original)
    # A rendition of a preset since changed: its row names another version of `thumb`.
    image = await images.get(superseded)
    assert image is not None
    old_key = f"renditions/{superseded}/{image.rendition_token}/thumb-0ld0ld.webp"
    await images.s3.put_object(Bucket=renditions, Key=old_key, Body=b"old")
    async with images.sessions.begin() as session:
        await session.execute(
            update(Rendition).where(Rendition.image_id == superseded).values(key=old_key)
        )
    await images.sqs.purge_queue(QueueUrl=images.stack.queue_url)
    return {"stranger": stranger, "superseded": superseded}


async def queued_reprocesses(images: Images) -> list[str]:
    bodies = []
    while messages := (
        await images.sqs.receive_message(
            QueueUrl=images.stack.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
    ).get("Messages", []):
        bodies += [m["Body"] for m in messages]
        for message in messages:
            await images.sqs.delete_message(
                QueueUrl=images.stack.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
    return bodies


async def test_reconcile_fixes_each_kind_of_drift_and_a_dry_run_changes_nothing(
    images: Images,
    start_worker: StartWorker,
    fast_settings: WorkerSettings,
    hopper_png: bytes,
) -> None:
    worker = await start_worker()
    ready = [await images.create(hopper_png) for _ in range(4)]
    for image_id in ready:
        await images.wait_for(image_id, "ready")
    await worker.stop()
    later, lost_rendition, lost_original, superseded = ready
    await make_drift(images, ready)
    context = context_of(images, fast_settings)
    before = await every_version(images)

    dry = await reconcile(context, Metrics(), dry_run=True)

    assert await every_version(images) == before
    assert await queued_reprocesses(images) == []
    assert Counter(fix.kind for fix in dry) == {
        # the stranger's original and rendition, the superseded image's current thumb object
        "unrecorded_object": 3,
        "stale_version": 1,  # the later upload
        "missing_original": 1,
        "missing_rendition": 1,
        "superseded_rendition": 1,
    }

    metrics = Metrics()
    fixed = await reconcile(context, metrics, dry_run=False)

    assert [f.describe() for f in fixed] == [f.describe() for f in dry]
    for kind, count in Counter(fix.kind for fix in fixed).items():
        value = metrics.registry.get_sample_value(
            "picforge_worker_reconcile_fixes_total", {"kind": kind}
        )
        assert value == count, kind
    failed = await images.get(lost_original)
    assert failed is not None and failed.status == "failed"
    assert failed.error_code == "original_missing" and failed.renditions == []
    queued = await queued_reprocesses(images)
    assert sorted(queued) == sorted(reprocess_message(i) for i in (lost_rendition, superseded))
    remaining = await reconcile(context, Metrics(), dry_run=True)
    assert {fix.kind for fix in remaining} <= {"missing_rendition", "superseded_rendition"}

    # The worker renders what was queued; then there is nothing left to fix.
    for image_id in (lost_rendition, superseded):
        await images.sqs.send_message(
            QueueUrl=images.stack.queue_url, MessageBody=reprocess_message(image_id)
        )
    await start_worker()

    async def settled() -> bool:
        return not await reconcile(context, Metrics(), dry_run=True)

    await eventually(settled, timeout_s=30, what="no drift left")
    later_versions = await images.s3.list_object_versions(
        Bucket=images.stack.names.uploads_bucket, Prefix=original_key(later)
    )
    assert len(later_versions.get("Versions", [])) == 1


async def test_reconcile_command_dry_run_prints_each_fix_and_changes_nothing(
    images: Images, fast_settings: WorkerSettings
) -> None:
    stranger = uuid.uuid4()
    await images.s3.put_object(
        Bucket=images.stack.names.uploads_bucket, Key=original_key(stranger), Body=b"x"
    )
    before = await every_version(images)
    environment = {
        **os.environ,
        **worker_environment(fast_settings, reconcile_grace_s=0),
    }

    dry = await run_picforge(["reconcile", "--dry-run"], environment)

    printed = f"unrecorded_object: erased picforge-uploads/originals/{stranger}"
    assert f"would fix {printed}" in dry
    assert "nothing changed" in dry
    assert await every_version(images) == before

    fixed = await run_picforge(["reconcile"], environment)

    assert f"fixed {printed}" in fixed
    assert await every_version(images) == []


async def run_picforge(arguments: list[str], environment: dict[str, str]) -> str:
    """The `picforge` command in a child process; what it printed."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "from service.cli import main; main()", *arguments],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout
