"""Reconciliation, both ways: what S3 holds against what the records say, and each drift fixed.

- `unrecorded_object`: an original or a rendition no record refers to (or an expired image's
  original): erased, every version;
- `stale_version`: a version other than the one in use (a later upload than the pinned
  original, an old version of a rendition, a delete marker): erased;
- `missing_original`: an uploaded image whose original is gone: failed `original_missing`, as
  the worker fails one, and its renditions erased, since it can never be rendered again;
- `missing_rendition`: a recorded rendition with no object: a reprocess is queued;
- `superseded_rendition`: renditions of presets changed or removed since, or under keys without
  the image's token (made before keys had one): a reprocess is queued.

Objects and records younger than `grace_s` are left alone: a render or an upload in flight
writes its objects before its record. The worker runs this periodically, one worker at a time,
and `picforge reconcile [--dry-run]` on demand (both in `worker.reconciling`);
each fix is logged (printed by the command) and counted in
`picforge_worker_reconcile_fixes_total{kind}`. A dry run finds the same and changes nothing.

The walk reads every record and lists both buckets' prefixes: meant for a periodic duty (hours
apart), not for every request.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.db import LIFT_STATEMENT_TIMEOUT
from service.jobs import reprocess_message
from service.models import Image, ImageStatus, Rendition
from service.storage import (
    ORIGINALS_PREFIX,
    RENDITIONS_PREFIX,
    erase_versions,
    image_id_from_original_key,
    original_key,
)
from worker import records
from worker.failures import FAILURE_CODES, ORIGINAL_MISSING
from worker.metrics import Metrics
from worker.renditions import Preset

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileContext:
    sessions: async_sessionmaker[AsyncSession]
    s3: S3Client
    sqs: SQSClient
    queue_url: str
    uploads_bucket: str
    renditions_bucket: str
    presets: Sequence[Preset]
    grace_s: float


@dataclass(frozen=True)
class Fix:
    kind: str
    image_id: uuid.UUID | None
    what: str
    bucket: str = ""
    key: str = ""
    version_id: str | None = None  # None: every version of the key

    def describe(self) -> str:
        return f"{self.kind}: {self.what}"


@dataclass(frozen=True)
class Version:
    version_id: str
    latest: bool
    marker: bool
    modified: datetime


@dataclass
class Walk:
    """What the records and the buckets hold, side by side."""

    images: dict[uuid.UUID, Any] = field(default_factory=dict)
    renditions: dict[uuid.UUID, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    originals: dict[str, list[Version]] = field(default_factory=dict)
    rendition_objects: dict[str, list[Version]] = field(default_factory=dict)


async def list_versions(s3: S3Client, bucket: str, prefix: str) -> dict[str, list[Version]]:
    found: dict[str, list[Version]] = defaultdict(list)
    paginator = s3.get_paginator("list_object_versions")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for entries, marker in (
            (page.get("Versions", []), False),
            (page.get("DeleteMarkers", []), True),
        ):
            for entry in entries:
                found[entry["Key"]].append(
                    Version(entry["VersionId"], entry["IsLatest"], marker, entry["LastModified"])
                )
    return found


async def walk(context: ReconcileContext) -> Walk:
    result = Walk()
    async with context.sessions() as session:
        await session.execute(LIFT_STATEMENT_TIMEOUT)  # whole tables
        rows = await session.execute(
            select(
                Image.id,
                Image.status,
                Image.error_code,
                Image.original_version_id,
                Image.rendition_token,
                Image.updated_at,
            )
        )
        result.images = {row.id: row for row in rows}
        for rendition in await session.execute(
            select(Rendition.image_id, Rendition.name, Rendition.key)
        ):
            result.renditions[rendition.image_id][rendition.name] = rendition.key
    result.originals = await list_versions(context.s3, context.uploads_bucket, ORIGINALS_PREFIX)
    result.rendition_objects = await list_versions(
        context.s3, context.renditions_bucket, RENDITIONS_PREFIX
    )
    return result


def image_id_from_rendition_key(key: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(key.removeprefix(RENDITIONS_PREFIX).split("/", 1)[0])
    except ValueError:
        return None


def find_drift(context: ReconcileContext, found: Walk, now: datetime) -> list[Fix]:
    settled = now - timedelta(seconds=context.grace_s)
    fixes = [
        *object_drift(context, found, settled),
        *record_drift(context, found, settled),
    ]
    return fixes


def object_drift(context: ReconcileContext, found: Walk, settled: datetime) -> list[Fix]:
    """Objects nothing refers to, and versions other than the one in use."""
    fixes: list[Fix] = []
    for key, versions in sorted(found.originals.items()):
        image_id = image_id_from_original_key(key)
        image = found.images.get(image_id) if image_id else None
        if image is not None and image.status == ImageStatus.EXPIRED:
            image = None
        pinned = image.original_version_id if image is not None else None
        fixes += object_fixes(
            context.uploads_bucket,
            key,
            versions,
            image_id,
            settled,
            used=image is not None,
            pinned=pinned,
        )
    for key, versions in sorted(found.rendition_objects.items()):
        image_id = image_id_from_rendition_key(key)
        recorded = image_id is not None and key in found.renditions.get(image_id, {}).values()
        fixes += object_fixes(
            context.renditions_bucket, key, versions, image_id, settled, used=recorded
        )
    return fixes


def object_fixes(
    bucket: str,
    key: str,
    versions: Sequence[Version],
    image_id: uuid.UUID | None,
    settled: datetime,
    *,
    used: bool,
    pinned: str | None = None,
) -> list[Fix]:
    if max(v.modified for v in versions) > settled:
        return []  # an upload or a render in flight
    if not used:
        return [Fix("unrecorded_object", image_id, f"erased {bucket}/{key}", bucket, key)]
    kept = keeping(versions, pinned=pinned)
    return [
        Fix(
            "stale_version",
            image_id,
            f"erased {bucket}/{key} version {v.version_id}",
            bucket,
            key,
            v.version_id,
        )
        for v in versions
        if v.version_id != kept
    ]


def keeping(versions: Sequence[Version], *, pinned: str | None) -> str | None:
    """The version in use: the pinned original, else the current one (not a delete marker)."""
    if pinned is not None:
        return pinned
    current = [v for v in versions if v.latest and not v.marker]
    return current[0].version_id if current else None


def present(versions: Sequence[Version] | None, version_id: str | None) -> bool:
    if not versions:
        return False
    if version_id is None:
        return any(v.latest and not v.marker for v in versions)
    return any(v.version_id == version_id and not v.marker for v in versions)


def record_drift(context: ReconcileContext, found: Walk, settled: datetime) -> list[Fix]:
    """Records whose objects are missing, and renditions of presets no longer configured."""
    fixes: list[Fix] = []
    wanted = {f"{p.name}-{p.version}" for p in context.presets}
    names = {p.name for p in context.presets}
    for image_id, image in sorted(found.images.items()):
        if image.status in (ImageStatus.AWAITING_UPLOAD, ImageStatus.EXPIRED):
            continue
        if image.updated_at > settled:
            continue
        key = original_key(image_id)
        if not present(found.originals.get(key), image.original_version_id):
            if image.error_code != ORIGINAL_MISSING:
                fixes.append(
                    Fix("missing_original", image_id, f"image {image_id} failed {ORIGINAL_MISSING}")
                )
            continue
        if image.status != ImageStatus.READY:
            continue
        keys = found.renditions.get(image_id, {})
        if not all(present(found.rendition_objects.get(k), None) for k in keys.values()):
            fixes.append(Fix("missing_rendition", image_id, f"reprocess of {image_id} queued"))
            continue
        token_prefix = f"{RENDITIONS_PREFIX}{image_id}/{image.rendition_token}/"
        stems = {k.rsplit("/", 1)[-1].rsplit(".", 1)[0] for k in keys.values()}
        if (
            set(keys) != names
            or not stems <= wanted
            or not all(k.startswith(token_prefix) for k in keys.values())
        ):
            fixes.append(Fix("superseded_rendition", image_id, f"reprocess of {image_id} queued"))
    return fixes


async def apply_fix(context: ReconcileContext, fix: Fix) -> None:
    if fix.kind in ("unrecorded_object", "stale_version"):
        await erase(context, fix)
    elif fix.kind == "missing_original":
        assert fix.image_id is not None
        keys = await records.record_original_missing(
            context.sessions, fix.image_id, message=FAILURE_CODES[ORIGINAL_MISSING]
        )
        if keys:
            await erase_versions(
                context.s3,
                bucket=context.renditions_bucket,
                prefix=f"{RENDITIONS_PREFIX}{fix.image_id}/",
                keys=set(keys),
            )
    else:
        assert fix.image_id is not None
        await context.sqs.send_message(
            QueueUrl=context.queue_url, MessageBody=reprocess_message(fix.image_id)
        )


async def erase(context: ReconcileContext, fix: Fix) -> None:
    if fix.bucket == context.uploads_bucket:
        # One version at a time: the worker may not batch-delete originals (infra/iam.tf).
        versions = (await list_versions(context.s3, fix.bucket, fix.key)).get(fix.key, [])
        for version in versions:
            if fix.version_id in (None, version.version_id):
                await context.s3.delete_object(
                    Bucket=fix.bucket, Key=fix.key, VersionId=version.version_id
                )
        return
    if fix.version_id is not None:
        await context.s3.delete_objects(
            Bucket=fix.bucket,
            Delete={"Objects": [{"Key": fix.key, "VersionId": fix.version_id}], "Quiet": True},
        )
    else:
        await erase_versions(context.s3, bucket=fix.bucket, prefix=fix.key, keys={fix.key})


async def reconcile(
    context: ReconcileContext,
    metrics: Metrics,
    *,
    dry_run: bool = False,
    report: Callable[[Fix], None] | None = None,
) -> list[Fix]:
    """Find every drift and, unless `dry_run`, fix it; the fixes, each reported as found."""
    fixes = find_drift(context, await walk(context), datetime.now(UTC))
    for fix in fixes:
        if not dry_run:
            await apply_fix(context, fix)
            metrics.reconciled(fix.kind)
        log.info("reconcile%s %s", " (dry run)" if dry_run else "", fix.describe())
        if report is not None:
            report(fix)
    return fixes
