"""A rotation while everything runs: the app role's password is revoked under a running API and
worker, then a new one is brought, and nobody restarts anything.

The API and the worker run as processes, as the app role `picforge_app` (not the owner), over
verify-full TLS, reading their password from a Secrets Manager secret (`PICFORGE_DB_AUTH=secret`:
the path that survives a rotation here; on RDS, IAM tokens leave nothing to rotate). While the
password is gone, clients get 503 `dependency_unavailable` and the worker stops receiving;
afterwards every image that was uploaded is ready, and the dead-letter queue is empty.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import boto3
import httpx
import pytest

from devstack.emulator import Emulator
from devstack.ports import free_port, wait_for_port
from devstack.postgres import APP_ROLE
from devstack.provision import Stack, provision
from service.config import DatabaseSettings
from service.db import create_engine, create_sessionmaker, upgrade_database
from service.keys import create_key
from tests.conftest import REPO_ROOT, TESTDATA
from tests.secure_postgres import ADDRESS, SecurePostgres

DATABASE = "picforge"
PICFORGE = [sys.executable, "-c", "from service.cli import main; main()"]
IMAGE = (TESTDATA / "good" / "hopper.png").read_bytes()
OUTAGE_S = 10  # several visibility timeouts of the worker (2 s) and its 5 deliveries


@pytest.fixture(scope="module")
def server() -> Iterator[SecurePostgres]:
    with SecurePostgres() as running:
        yield running


def owner_settings(server: SecurePostgres) -> DatabaseSettings:
    return DatabaseSettings(
        db_host=ADDRESS,
        db_port=server.port,
        db_name=DATABASE,
        db_user="postgres",
        db_password=server.password,
        db_sslmode="verify-full",
        db_sslrootcert=str(server.certificates.ca),
    )


async def admin(server: SecurePostgres, database: str = DATABASE) -> asyncpg.Connection:
    return await asyncpg.connect(server.url(db=database), ssl="require")


@pytest.fixture
async def migrated(server: SecurePostgres) -> str:
    """A fresh database, migrated by its owner; the app role's first password."""
    connection = await admin(server, "postgres")
    await connection.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    await connection.execute(f"CREATE DATABASE {DATABASE}")
    await connection.close()
    await upgrade_database(owner_settings(server))
    password = secrets.token_urlsafe(16)
    connection = await admin(server)
    await connection.execute(f"ALTER ROLE {APP_ROLE} PASSWORD '{password}'")
    await connection.close()
    return password


async def owner_key(server: SecurePostgres) -> str:
    engine = create_engine(owner_settings(server))
    try:
        return await create_key(create_sessionmaker(engine), owner="rotation")
    finally:
        await engine.dispose()


def app_environment(
    server: SecurePostgres, emulator: Emulator, stack: Stack, secret_arn: str
) -> dict[str, str]:
    return {
        **os.environ,
        "PICFORGE_DB_HOST": ADDRESS,
        "PICFORGE_DB_PORT": str(server.port),
        "PICFORGE_DB_NAME": DATABASE,
        "PICFORGE_DB_USER": APP_ROLE,
        "PICFORGE_DB_AUTH": "secret",
        "PICFORGE_DB_SECRET_ARN": secret_arn,
        "PICFORGE_DB_SSLMODE": "verify-full",
        "PICFORGE_DB_SSLROOTCERT": str(server.certificates.ca),
        "PICFORGE_AWS_ENDPOINT_URL": emulator.url,
        "PICFORGE_UPLOADS_BUCKET": stack.names.uploads_bucket,
        "PICFORGE_RENDITIONS_BUCKET": stack.names.renditions_bucket,
        "PICFORGE_QUEUE_URL": stack.queue_url,
        "PICFORGE_WORKER_WAIT_S": "1",
        "PICFORGE_WORKER_VISIBILITY_TIMEOUT_S": "2",
        "PICFORGE_WORKER_RENDER_PROCESSES": "1",
        "PICFORGE_WORKER_CONCURRENCY": "4",
        "PICFORGE_WORKER_METRICS_PORT": "0",
    }


class Load:
    """Clients creating, uploading and reading images until stopped; every status counted."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.statuses: Counter[int] = Counter()
        self.uploaded: list[str] = []
        self.tickets: list[tuple[str, dict[str, Any]]] = []  # created, not yet uploaded
        self.stop = threading.Event()
        self.errors: list[str] = []

    def create(self) -> tuple[str, dict[str, Any]] | None:
        response = self.http.post(
            "/v1/images",
            json={
                "filename": "h.png",
                "content_type": "image/png",
                "size_bytes": len(IMAGE),
                "upload_method": "put",
            },
        )
        self.record(response)
        if response.status_code != 201:
            return None
        created = response.json()
        return created["id"], created["upload"]

    def upload(self, image_id: str, ticket: dict[str, Any]) -> None:
        sent = httpx.put(ticket["url"], headers=ticket["headers"], content=IMAGE)
        assert sent.status_code == 200, sent.text
        self.uploaded.append(image_id)

    def record(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code >= 500 and response.status_code != 503:
            self.errors.append(f"{response.request.method} {response.request.url}: {response.text}")
        if response.status_code == 503:
            assert response.json()["code"] == "dependency_unavailable"

    def run(self) -> None:
        while not self.stop.is_set():
            created = self.create()
            if created is not None:
                self.upload(*created)
                self.record(self.http.get(f"/v1/images/{created[0]}"))
            self.record(self.http.get("/v1/images", params={"limit": 5}))
            time.sleep(0.05)


def wait_until_ready(http: httpx.Client, image_ids: list[str], timeout_s: float) -> list[str]:
    """The images not ready by the deadline."""
    deadline = time.monotonic() + timeout_s
    waiting = set(image_ids)
    while waiting and time.monotonic() < deadline:
        for image_id in sorted(waiting):
            response = http.get(f"/v1/images/{image_id}")
            if response.status_code == 200 and response.json()["status"] == "ready":
                waiting.discard(image_id)
        time.sleep(0.3)
    return sorted(waiting)


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=output, stderr=output)


def sql(server: SecurePostgres, *statements: str) -> None:
    async def run() -> None:
        connection = await admin(server)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def test_rotation_under_load_is_503s_then_recovery_with_no_image_lost(
    server: SecurePostgres, migrated: str, emulator: Emulator, tmp_path: Path
) -> None:
    emulator.reset()
    stack = provision(emulator.url)
    secrets_manager = boto3.client(
        "secretsmanager", endpoint_url=emulator.url, region_name="us-east-1"
    )
    first = json.dumps({"username": APP_ROLE, "password": migrated})
    secret_arn = secrets_manager.create_secret(Name="picforge/app-db", SecretString=first)["ARN"]
    key = asyncio.run(owner_key(server))
    env = app_environment(server, emulator, stack, secret_arn)
    port = free_port()
    api = start([*PICFORGE, "serve", "--port", str(port)], env, tmp_path / "api.log")
    worker = start([sys.executable, "-m", "worker"], env, tmp_path / "worker.log")
    try:
        wait_for_port(port, timeout_s=60, is_alive=lambda: api.poll() is None)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as http:
            load = Load(http)
            # Created before the outage, uploaded during it, while the worker is idle: it
            # meets the outage with these.
            pending = [ticket for _ in range(3) if (ticket := load.create()) is not None]
            assert len(pending) == 3

            sql(
                server,
                f"ALTER ROLE {APP_ROLE} PASSWORD NULL",
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE usename = '{APP_ROLE}'",
            )
            clients = threading.Thread(target=load.run)
            clients.start()
            for image_id, ticket in pending:
                load.upload(image_id, ticket)
            time.sleep(OUTAGE_S)

            rotated = secrets.token_urlsafe(16)
            sql(server, f"ALTER ROLE {APP_ROLE} PASSWORD '{rotated}'")
            secrets_manager.put_secret_value(
                SecretId=secret_arn,
                SecretString=json.dumps({"username": APP_ROLE, "password": rotated}),
            )
            created_before = load.statuses[201]
            deadline = time.monotonic() + 60
            while load.statuses[201] < created_before + 3 and time.monotonic() < deadline:
                time.sleep(0.2)
            load.stop.set()
            clients.join(timeout=60)

            not_ready = wait_until_ready(http, load.uploaded, timeout_s=90)
    finally:
        for process in (api, worker):
            process.terminate()
        for process in (api, worker):
            process.wait(timeout=60)
    logs = "\n".join(path.read_text() for path in sorted(tmp_path.glob("*.log")))

    assert load.errors == [], logs
    assert set(load.statuses) <= {200, 201, 503}, load.statuses
    assert load.statuses[503] > 0, "the outage never showed: did the password change?"
    assert load.statuses[201] >= len(pending) + 3, "creates did not come back after the rotation"
    assert not_ready == [], logs
    dead_letters = boto3.client("sqs", endpoint_url=emulator.url, region_name="us-east-1")
    attributes = dead_letters.get_queue_attributes(
        QueueUrl=stack.dead_letter_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }
    assert "the database is unavailable: no messages are received" in logs
    assert "the secret changed; logging in with the new one" in logs
    assert rotated not in logs and migrated not in logs
