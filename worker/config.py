"""Settings for the worker process, read once at start-up from `PICFORGE_*` variables."""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator
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
    # One frame's pixels, whatever the memory; unset: the render memory alone decides.
    max_pixels: int | None = Field(None, ge=1)
    # Each render process's address-space cap (RLIMIT_AS); the pixel limit of every format
    # follows from it (see worker.costs). The task needs this times the render processes.
    render_memory_mb: int = Field(1024, ge=256)
    # CPU time one image may take in its render process: a base, a share per megapixel, capped.
    render_cpu_s: float = Field(2.0, gt=0)
    render_cpu_s_per_mp: float = Field(0.25, ge=0)
    render_cpu_max_s: float = Field(30.0, gt=0)
    max_jpeg_scans: int = Field(100, ge=1)
    max_metadata_bytes: int = Field(8 * 1024 * 1024, ge=0)
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

    @model_validator(mode="after")
    def _budget_fits_the_job_timeout(self) -> WorkerSettings:
        # The job timeout is wall time for fetch, render and store; the CPU budget must end a
        # render well inside it, so a runaway image fails on its budget, not on the timeout.
        if self.render_cpu_max_s * 2 > self.worker_job_timeout_s:
            raise ValueError(
                "PICFORGE_RENDER_CPU_MAX_S must be at most half PICFORGE_WORKER_JOB_TIMEOUT_S"
            )
        return self
