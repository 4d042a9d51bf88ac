"""A whole deployment in real processes, to break on purpose.

Each test gets its own PostgreSQL and emulator (so an outage hurts nobody else), provisioned and
migrated, and the real `picforge serve` and `python -m worker` as child processes, as `make dev`
runs them. The test stops, kills and cuts what it likes; afterwards `settle()` checks what a user
is owed: every image that was uploaded ends `ready` or `failed` with a code, and S3 holds nothing
that no record owns.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aioboto3
import httpx
import pytest
from alembic import command
from PIL import Image
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from devstack.emulator import EMULATOR_CREDENTIALS, Emulator
from devstack.ports import free_port, wait_for_port
from devstack.postgres import EmbeddedPostgres
from devstack.provision import provision
from service.config import DatabaseSettings
from service.db import alembic_config, create_sessionmaker
from service.keys import create_key
from tests.conftest import REPO_ROOT
from tests.database_relay import DatabaseRelay
from tests.flow import FINISHED
from tests.queue import queue_counts

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient

STOP_TIMEOUT_S = 40
FIGURES_KEY = pytest.StashKey["Figures"]()
PICFORGE = [sys.executable, "-c", "from service.cli import main; main()"]


def sample_png(width: int, height: int) -> bytes:
    """A smooth RGB picture: cheap to make and send, an ordinary render."""
    gradient = Image.linear_gradient("L").resize((width, height))
    picture = Image.merge(
        "RGB",
        (
            gradient,
            gradient.transpose(Image.Transpose.ROTATE_180),
            Image.radial_gradient("L").resize((width, height)),
        ),
    )
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Figures:
    """What each fault did, printed as a table at the end of the run (for bench/README.md)."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        self.rows.append(row)


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest) -> Figures:
    return request.config.stash.setdefault(FIGURES_KEY, Figures())


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    collected = config.stash.get(FIGURES_KEY, None)
    if not collected or not collected.rows:
        return
    terminalreporter.section("reliability: what each fault did")
    terminalreporter.write_line(
        "| fault | what the system did | recovery | images | lost | stuck |"
    )
    terminalreporter.write_line("|---|---|---|---|---|---|")
    for row in collected.rows:
        recovery = row.get("recovery_s")
        terminalreporter.write_line(
            f"| {row['fault']} | {row['behaviour']} | "
            f"{'-' if recovery is None else f'{recovery:.1f} s'} | {row['images']} | "
            f"{row['lost']} | {row['stuck']} |"
        )


@dataclass
class Process:
    """A child process with its output in a log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no drain, no clean-up, as the kernel's OOM killer or a lost host does it."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Deployment:
    postgres: EmbeddedPostgres
    emulator: Emulator
    env: dict[str, str]
    api: Process
    worker: Process
    api_url: str
    key: str
    engine: AsyncEngine
    s3: S3Client
    sqs: SQSClient
    # Every image id the API answered 201 for, with whether its upload went through.
    uploaded: dict[str, bool] = field(default_factory=dict)

    @property
    def uploads_bucket(self) -> str:
        return self.env["PICFORGE_UPLOADS_BUCKET"]

    @property
    def renditions_bucket(self) -> str:
        return self.env["PICFORGE_RENDITIONS_BUCKET"]

    def client(self, *, timeout_s: float = 30) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=timeout_s,
        )

    def restart_worker(self, **settings: str) -> None:
        """A new worker process, with these `PICFORGE_*` settings changed."""
        self.worker.stop()
        self.worker.env = self.worker.env | settings
        self.worker.start()

    async def statuses(self) -> dict[str, str]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(text("SELECT id, status FROM images"))
            return {str(image_id): status for image_id, status in rows}

    async def cut_worker_connections(self) -> int:
        """pg_terminate_backend on every connection but ours: the worker's, the API's."""
        async with self.engine.connect() as connection:
            cut = await connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            return int(cut.scalar_one())

    async def stored_keys(self) -> dict[str, list[str]]:
        keys: dict[str, list[str]] = {}
        for bucket in (self.uploads_bucket, self.renditions_bucket):
            paginator = self.s3.get_paginator("list_objects_v2")
            found = []
            async for page in paginator.paginate(Bucket=bucket):
                found.extend(item["Key"] for item in page.get("Contents", []))
            keys[bucket] = found
        return keys

    async def messages_queued(self) -> int:
        """Messages waiting in the queue or in a worker's hands (received, not yet deleted)."""
        return sum(await queue_counts(self.sqs, self.env["PICFORGE_QUEUE_URL"]))

    async def orphans(self) -> list[str]:
        """Objects in either bucket that no image record owns."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(text("SELECT id FROM images"))
            image_ids = {str(image_id) for (image_id,) in rows}
            rendition_keys = {
                key for (key,) in await connection.execute(text("SELECT key FROM renditions"))
            }
        stored = await self.stored_keys()
        orphans = [
            f"{self.uploads_bucket}/{key}"
            for key in stored[self.uploads_bucket]
            if key.removeprefix("originals/") not in image_ids
        ]
        orphans += [
            f"{self.renditions_bucket}/{key}"
            for key in stored[self.renditions_bucket]
            if key not in rendition_keys
        ]
        return orphans


async def until_processing(deployment: Deployment, *, timeout_s: float = 60) -> None:
    """Until the worker has an image in hand."""
    deadline = time.monotonic() + timeout_s
    while "processing" not in (await deployment.statuses()).values():
        assert time.monotonic() < deadline, "nothing started processing"
        await asyncio.sleep(0.02)


async def settle(deployment: Deployment, *, timeout_s: float = 90) -> dict[str, Any]:
    """Wait until every uploaded image is `ready` or `failed` (or deleted) and the worker has
    finished every message, then check nothing is left over.

    Returns the image records by id. Fails the test on an image lost (uploaded, then gone from
    the database without a DELETE), stuck (not finished in time), failed without a code, or an
    object in S3 that no record owns.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    records: dict[str, Any] = {}
    async with deployment.client() as http:
        pending = [image_id for image_id, done in deployment.uploaded.items() if done]
        while pending:
            still = []
            for image_id in pending:
                response = await http.get(f"/v1/images/{image_id}")
                assert response.status_code in (200, 404, 503), response.text
                if response.status_code == 404:
                    records[image_id] = None
                elif response.status_code == 200:
                    record = response.json()
                    records[image_id] = record
                    if record["status"] not in FINISHED:
                        still.append(image_id)
                else:
                    still.append(image_id)
            pending = still
            if pending and loop.time() > deadline:
                statuses = {image_id: records.get(image_id, {}) for image_id in pending}
                raise AssertionError(f"{len(pending)} images stuck: {statuses}")
            await asyncio.sleep(0.2)
    # A deleted image answers 404 before the worker is done with it: a render in flight still
    # writes its renditions, then takes them back.
    while queued := await deployment.messages_queued():
        assert loop.time() < deadline, f"{queued} messages still queued or in a worker's hands"
        await asyncio.sleep(0.2)
    for record in records.values():
        if record is not None and record["status"] == "failed":
            assert record["error"]["code"], record
    assert await deployment.orphans() == []
    return records


def _environment(postgres: EmbeddedPostgres, emulator: Emulator) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PICFORGE_")}
    env |= EMULATOR_CREDENTIALS
    env |= {
        "PICFORGE_DATABASE_URL": postgres.url,
        "PICFORGE_AWS_ENDPOINT_URL": emulator.url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONUNBUFFERED": "1",
        # Short enough that a killed worker's messages come back within a test.
        "PICFORGE_WORKER_VISIBILITY_TIMEOUT_S": "5",
        "PICFORGE_WORKER_JOB_TIMEOUT_S": "60",
        "PICFORGE_WORKER_WAIT_S": "1",
        "PICFORGE_WORKER_RENDER_PROCESSES": "1",
        "PICFORGE_WORKER_CONCURRENCY": "2",
        "PICFORGE_WORKER_METRICS_PORT": str(free_port()),
        "PICFORGE_WORKER_METRICS_HOST": "127.0.0.1",
        "PICFORGE_WORKER_DRAIN_S": "2",
        # The traffic is one owner's, faster than its default fair share: the faults are the
        # subject here (tests/service/test_limits*.py test the limits).
        "PICFORGE_CREATE_RATE_PER_MINUTE": str(10**6),
        "PICFORGE_CREATE_BURST": str(10**4),
        "PICFORGE_MAX_AWAITING_UPLOAD": str(10**6),
        "PICFORGE_MAX_IN_FLIGHT_PER_OWNER": str(10**4),
    }
    stack = provision(emulator.url, credentials=env)
    env |= {
        "PICFORGE_UPLOADS_BUCKET": stack.names.uploads_bucket,
        "PICFORGE_RENDITIONS_BUCKET": stack.names.renditions_bucket,
        "PICFORGE_QUEUE_URL": stack.queue_url,
    }
    return env


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[EmbeddedPostgres, Emulator]]:
    with (
        EmbeddedPostgres() as postgres,
        Emulator(log_path=tmp_path / "ministack.log", state_dir=tmp_path / "ministack") as emulator,
    ):
        yield postgres, emulator


@asynccontextmanager
async def deployed(
    servers: tuple[EmbeddedPostgres, Emulator],
    tmp_path: Path,
    *,
    processes_database_url: str | None = None,
    settings: dict[str, str] | None = None,
) -> AsyncIterator[Deployment]:
    """The API and the worker on `servers`, reaching PostgreSQL at `processes_database_url`
    (default: the server itself), with these `PICFORGE_*` `settings` changed. Waits run in
    threads: the event loop may be serving the processes' connections (a relay)."""
    postgres, emulator = servers
    env = await asyncio.to_thread(_environment, postgres, emulator)
    if processes_database_url:
        env["PICFORGE_DATABASE_URL"] = processes_database_url
    env |= settings or {}
    database_url = DatabaseSettings(database_url=postgres.url).sqlalchemy_url
    await asyncio.to_thread(command.upgrade, alembic_config(database_url), "head")
    engine = create_async_engine(database_url, pool_pre_ping=True)  # it outlives outages
    key = await create_key(create_sessionmaker(engine), owner="reliability")
    port = free_port()
    api = Process(
        "api",
        [*PICFORGE, "serve", "--port", str(port), "--no-access-log"],
        env,
        tmp_path / "api.log",
    )
    worker = Process("worker", [sys.executable, "-m", "worker"], env, tmp_path / "worker.log")
    api.start()
    worker.start()
    try:
        await asyncio.to_thread(wait_for_port, port, timeout_s=120, is_alive=api.running)
        session = aioboto3.Session()
        async with (
            session.client("s3", endpoint_url=emulator.url, region_name="us-east-1") as s3,
            session.client("sqs", endpoint_url=emulator.url, region_name="us-east-1") as sqs,
        ):
            yield Deployment(
                postgres=postgres,
                emulator=emulator,
                env=env,
                api=api,
                worker=worker,
                api_url=f"http://127.0.0.1:{port}",
                key=key,
                engine=engine,
                s3=s3,
                sqs=sqs,
            )
    finally:
        await asyncio.to_thread(worker.stop)
        await asyncio.to_thread(api.stop)
        await engine.dispose()


@pytest.fixture
async def deployment(
    servers: tuple[EmbeddedPostgres, Emulator], tmp_path: Path
) -> AsyncIterator[Deployment]:
    async with deployed(servers, tmp_path) as running:
        yield running


# What a silent database holds each process to: the API's wait for a statement's answer and
# for a login, and the worker's job timeout (with the render budget it must hold), shortened
# from their defaults (30 s, 10 s, 120 s) to fit a test.
SILENT_DATABASE_SETTINGS = {
    "PICFORGE_DB_COMMAND_TIMEOUT_S": "3",
    "PICFORGE_DB_CONNECT_TIMEOUT_S": "3",
    "PICFORGE_WORKER_JOB_TIMEOUT_S": "20",
    "PICFORGE_RENDER_CPU_MAX_S": "10",
}


@pytest.fixture
async def relayed_deployment(
    servers: tuple[EmbeddedPostgres, Emulator], tmp_path: Path
) -> AsyncIterator[tuple[Deployment, DatabaseRelay]]:
    """A deployment whose processes reach PostgreSQL through a relay the test can silence
    (the test's own connections go straight to the server)."""
    database_url = DatabaseSettings(database_url=servers[0].url).sqlalchemy_url
    async with (
        DatabaseRelay.to(database_url) as (relay, relayed_url),
        deployed(
            servers,
            tmp_path,
            processes_database_url=relayed_url,
            settings=SILENT_DATABASE_SETTINGS,
        ) as running,
    ):
        yield running, relay
