"""Settings for the worker process, read once at start-up from `PICFORGE_*` variables."""

from __future__ import annotations

import os

from pydantic import Field

from service.config import AwsSettings, DatabaseSettings


class WorkerSettings(AwsSettings, DatabaseSettings):
    queue_url: str
    # Images rendered at once; each holds one decoded original in memory.
    worker_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
    worker_render_processes: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    worker_wait_s: int = Field(20, ge=0, le=20)  # SQS long-poll ceiling
    # The longest one image may take; the queue's visibility timeout must exceed it.
    worker_job_timeout_s: int = Field(120, ge=5)
    worker_drain_s: float = Field(30, ge=0)
    worker_metrics_port: int | None = Field(9100, ge=0, le=65535)
    max_pixels: int = Field(100_000_000, ge=1)
