"""What the worker's delivery tests share: images put straight into the database and the uploads
bucket (the S3 notification is the emulator's own), workers started with settings of the test's
choosing (in this process, or as the real `python -m worker`), and waiting for outcomes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioboto3
import pytest
from PIL import Image as PILImage
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import selectinload

from devstack.emulator import Emulator
from devstack.provision import Stack
from service.models import Image, ImageStatus
from service.storage import original_key
from tests.conftest import REPO_ROOT, TESTDATA
from tests.polling import eventually
from tests.queue import queue_counts
from worker.config import WorkerSettings
from worker.main import run_worker
from worker.metrics import Metrics
from worker.renditions import Preset

THUMB_ONLY = (Preset("thumb", 128, 128),)


def png_bytes(width: int, height: int) -> bytes:
    gradient = PILImage.linear_gradient("L").resize((width, height))
    image = PILImage.merge(
        "RGB",
        (
            gradient,
            gradient.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT),
            PILImage.radial_gradient("L").resize((width, height)),
        ),
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def large_png() -> bytes:
    """40 MP (8000x5000), about 1 MB: cheap to send, slow to render."""
    return png_bytes(8000, 5000)


@pytest.fixture(scope="session")
def hopper_png() -> bytes:
    return (TESTDATA / "good" / "hopper.png").read_bytes()


@dataclass
class Images:
    """Images as the API leaves them: a row `awaiting_upload`, then the original in S3."""

    sessions: async_sessionmaker[AsyncSession]
    s3: Any
    sqs: Any
    stack: Stack

    async def add_row(self, *, content_type: str = "image/png", size_bytes: int = 1) -> uuid.UUID:
        image_id = uuid.uuid4()
        values: dict[str, Any] = {
            "id": image_id,
            "status": ImageStatus.AWAITING_UPLOAD,
            "filename": "test.png",
            "content_type": content_type,
            "size_bytes": size_bytes,
        }
        if "owner" in Image.__table__.c:  # the API's owners (migration 0003)
            values["owner"] = "worker-tests"
        async with self.sessions.begin() as session:
            await session.execute(insert(Image).values(values))
        return image_id

    async def mark_failed(self, image_id: uuid.UUID, *, code: str) -> None:
        """As if an earlier delivery had failed the image with `code`."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(Image)
                .where(Image.id == image_id)
                .values(status=ImageStatus.FAILED, error_code=code, error_message="x")
            )

    async def upload(self, image_id: uuid.UUID, data: bytes, content_type: str) -> None:
        await self.s3.put_object(
            Bucket=self.stack.names.uploads_bucket,
            Key=original_key(image_id),
            Body=data,
            ContentType=content_type,
        )

    async def create(self, data: bytes, *, content_type: str = "image/png") -> uuid.UUID:
        image_id = await self.add_row(content_type=content_type, size_bytes=len(data))
        await self.upload(image_id, data, content_type)
        return image_id

    async def get(self, image_id: uuid.UUID) -> Image | None:
        async with self.sessions() as session:
            image: Image | None = await session.scalar(
                select(Image)
                .where(Image.id == image_id)
                .options(selectinload(Image.renditions))
                .execution_options(populate_existing=True)
            )
            return image

    async def wait_for(self, image_id: uuid.UUID, *statuses: str, timeout_s: float = 20) -> Image:
        async def reached() -> Image | None:
            image = await self.get(image_id)
            return image if image is not None and image.status in statuses else None

        image: Image = await eventually(reached, timeout_s=timeout_s, what=f"{statuses}")
        return image

    async def rendition_keys(self) -> list[str]:
        listing = await self.s3.list_objects_v2(Bucket=self.stack.names.renditions_bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    async def queue_counts(self, queue_url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) messages of the queue (default: the worker's)."""
        return await queue_counts(self.sqs, queue_url or self.stack.queue_url)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(database_url)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


@pytest.fixture
async def images(
    stack: Stack, emulator: Emulator, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Images]:
    session = aioboto3.Session()
    async with (
        session.client("s3", endpoint_url=emulator.url, region_name="us-east-1") as s3,
        session.client("sqs", endpoint_url=emulator.url, region_name="us-east-1") as sqs,
    ):
        yield Images(sessions=sessions, s3=s3, sqs=sqs, stack=stack)


@pytest.fixture
def fast_settings(worker_settings: WorkerSettings) -> WorkerSettings:
    """Short timeouts, so that redeliveries happen within a test."""
    return worker_settings.model_copy(
        update={
            "worker_visibility_timeout_s": 2,
            "worker_concurrency": 2,
            "worker_drain_s": 10,
            "presets": THUMB_ONLY,
        }
    )


@dataclass
class RunningWorker:
    task: asyncio.Task[Metrics]
    stop_event: asyncio.Event
    metrics: Metrics

    def count(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    async def stop(self) -> Metrics:
        self.stop_event.set()
        return await asyncio.wait_for(self.task, timeout=30)


StartWorker = Callable[..., Awaitable[RunningWorker]]


@pytest.fixture
async def start_worker(fast_settings: WorkerSettings) -> AsyncIterator[StartWorker]:
    """Start a real worker in this event loop: `await start_worker(setting=value, ...)`."""
    running: list[RunningWorker] = []

    async def start(**overrides: Any) -> RunningWorker:
        settings = fast_settings.model_copy(update=overrides)
        stop = asyncio.Event()
        metrics = Metrics()
        task = asyncio.create_task(run_worker(settings, stop, metrics=metrics))
        worker = RunningWorker(task, stop, metrics)
        running.append(worker)
        return worker

    yield start
    for worker in running:
        if not worker.task.done():
            await worker.stop()


def worker_environment(settings: WorkerSettings, **overrides: Any) -> dict[str, str]:
    """The `PICFORGE_*` variables that give `python -m worker` these settings."""
    values = settings.model_dump(exclude={"presets"}) | overrides
    environment = {
        f"PICFORGE_{name.upper()}": str(value)
        for name, value in values.items()
        if value is not None and name != "db_password"
    }
    presets = overrides.get("presets", settings.presets)
    environment["PICFORGE_PRESETS"] = json.dumps([preset.__dict__ for preset in presets])
    return environment


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    release_path: Path

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def release_renders(self) -> None:
        """Let the renders it holds (and every later one) go on."""
        self.release_path.touch()

    def kill_everything(self) -> None:
        """SIGKILL the worker and its render processes, as a container's end would."""
        os.killpg(self.process.pid, signal.SIGKILL)

    async def wait(self, timeout_s: float) -> int:
        return await asyncio.wait_for(asyncio.to_thread(self.process.wait), timeout_s)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def spawn_worker(
    fast_settings: WorkerSettings, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Run the real `python -m worker` with these settings (and overrides), its renders held
    until the test calls `release_renders()` (tests/worker/held_worker.py)."""
    spawned: list[WorkerProcess] = []

    def spawn(**overrides: Any) -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(spawned)}.log"
        release_path = tmp_path / f"worker-{len(spawned)}.release"
        environment = {
            **os.environ,
            # An ephemeral port: two workers at once must not both want 9100.
            **worker_environment(
                fast_settings, worker_metrics_host="127.0.0.1", worker_metrics_port=0, **overrides
            ),
            "PYTHONUNBUFFERED": "1",
        }
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.worker.held_worker", str(release_path)],
                cwd=REPO_ROOT,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, render processes included
            )
        worker = WorkerProcess(process, log_path, release_path)
        spawned.append(worker)
        return worker

    yield spawn
    for worker in spawned:
        if worker.process.poll() is None:
            worker.kill_everything()
            worker.process.wait()
