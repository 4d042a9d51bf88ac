"""Settings for the worker process, read once at start-up from `PICFORGE_*` variables."""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_settings import NoDecode

from service.config import AwsSettings, DatabaseSettings
from worker.renditions import DEFAULT_PRESETS, Preset, parse_presets


def _presets_from_json(value: Any) -> Any:
    # The JSON is parsed by `parse_presets`, whose errors name the preset and field at fault.
    return parse_presets(value) if isinstance(value, str) else value


class WorkerSettings(AwsSettings, DatabaseSettings):
    queue_url: str
    # Images in flight at once; each holds one decoded original in memory.
    worker_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
    worker_render_processes: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    worker_wait_s: int = Field(20, ge=0, le=20)  # SQS long-poll ceiling
    # The longest one image may take; the queue's visibility timeout must exceed it.
    worker_job_timeout_s: int = Field(120, ge=1)
    # How long a received message stays hidden, renewed while its image is worked on: after a
    # crash, its message comes back this soon.
    worker_visibility_timeout_s: int = Field(60, ge=1, le=43_200)
    worker_drain_s: float = Field(30, ge=0)
    # Deliveries before the queue dead-letters a message; unset: read from its RedrivePolicy.
    worker_max_receive_count: int | None = Field(None, ge=1, le=1000)
    worker_metrics_host: str = "0.0.0.0"  # all interfaces: the container port is published
    worker_metrics_port: int | None = Field(9100, ge=0, le=65535)  # None: no endpoint
    max_pixels: int = Field(100_000_000, ge=1)
    # The API's upload ticket lifetime (the same variable): an image still `awaiting_upload`
    # this long plus `upload_grace_s` after its creation becomes `expired` (worker.sweep).
    presign_expires_s: int = Field(300, ge=30, le=3600)
    upload_grace_s: int = Field(900, ge=0)
    # How long an Idempotency-Key is remembered (the same variable as the API's).
    idempotency_key_ttl_s: int = Field(24 * 3600, ge=60)
    # How often the worker sweeps expired uploads and keys, and reconciles S3 with the records.
    worker_sweep_every_s: float = Field(300, gt=0)
    worker_reconcile_every_s: float = Field(6 * 3600, gt=0)
    # Objects younger than this are left alone by reconcile: a render or an upload in flight.
    reconcile_grace_s: int = Field(3600, ge=0)
    # A JSON array of presets (see `worker.presets.parse_presets`).
    presets: Annotated[tuple[Preset, ...], NoDecode, BeforeValidator(_presets_from_json)] = (
        DEFAULT_PRESETS
    )
