"""Start-up and health: processes refuse an unmigrated database, and readiness tells the truth."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import httpx
import pytest

from devstack.emulator import Emulator
from devstack.provision import Stack
from service.config import ApiSettings
from service.db import SchemaNotMigrated
from service.main import create_app
from tests.conftest import REPO_ROOT


async def test_service_refuses_unmigrated_database(
    api_settings: ApiSettings, unmigrated_database_url: str
) -> None:
    settings = api_settings.model_copy(update={"database_url": unmigrated_database_url})
    app = create_app(settings)

    with pytest.raises(SchemaNotMigrated, match="picforge migrate"):
        async with app.router.lifespan_context(app):
            pass


@pytest.mark.parametrize(
    "argv",
    [
        [sys.executable, "-c", "from service.cli import main; main()", "serve", "--port", "0"],
        [sys.executable, "-m", "worker"],
    ],
    ids=["api", "worker"],
)
def test_process_exits_with_clear_message_on_unmigrated_database(
    argv: list[str], stack: Stack, emulator: Emulator, unmigrated_database_url: str
) -> None:
    env = {
        **os.environ,
        "PICFORGE_DATABASE_URL": unmigrated_database_url,
        "PICFORGE_AWS_ENDPOINT_URL": emulator.url,
        "PICFORGE_UPLOADS_BUCKET": stack.names.uploads_bucket,
        "PICFORGE_RENDITIONS_BUCKET": stack.names.renditions_bucket,
        "PICFORGE_QUEUE_URL": stack.queue_url,
    }

    result = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 1
    assert "schema is at revision none" in result.stderr
    assert "run `picforge migrate` first" in result.stderr
    assert "Traceback" not in result.stderr


async def test_healthz_answers_without_dependencies(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_ok_when_database_and_buckets_reachable(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200


async def test_readyz_is_503_problem_when_a_bucket_is_missing(
    client: httpx.AsyncClient, stack: Stack, emulator: Emulator
) -> None:
    boto3.client("s3", endpoint_url=emulator.url, region_name="us-east-1").delete_bucket(
        Bucket=stack.names.renditions_bucket
    )

    response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "dependency_unavailable"
    assert "renditions bucket" in problem["detail"]
