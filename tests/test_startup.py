"""Start-up and health: processes refuse an unmigrated database, and readiness tells the truth."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
@pytest.mark.timeout(300)  # two Python start-ups: slow on a loaded machine
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
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180
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


API_ARGV = [sys.executable, "-c", "from service.cli import main; main()", "serve", "--port", "0"]
WORKER_ARGV = [sys.executable, "-m", "worker"]
NO_SUCH_QUEUE = "http://sqs.us-east-1.localhost/000000000000/no-such-queue"
UNKNOWN_PRESET_FIELD = '[{"name": "thumb", "width": 128, "height": 128, "sizes": [1]}]'


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("argv", "setting", "value", "says"),
    [
        (API_ARGV, "PICFORGE_DB_POOL_SIZE", "lots",
         "PICFORGE_DB_POOL_SIZE: Input should be a valid integer"),
        (API_ARGV, "PICFORGE_QUEUE_URL", None, "PICFORGE_QUEUE_URL: is required but not set"),
        (API_ARGV, "PICFORGE_AWS_ENDPOINT_URL", "http://127.0.0.1:9",
         "PICFORGE_AWS_ENDPOINT_URL: nothing answers at http://127.0.0.1:9"),
        (API_ARGV, "PICFORGE_DATABASE_URL", "postgresql://picforge@127.0.0.1:9/picforge",
         "PICFORGE_DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:9/picforge"),
        (API_ARGV, "PICFORGE_UPLOADS_BUCKET", "no-such-bucket",
         "PICFORGE_UPLOADS_BUCKET: there is no bucket 'no-such-bucket'"),
        (WORKER_ARGV, "PICFORGE_PRESETS", UNKNOWN_PRESET_FIELD,
         "PICFORGE_PRESETS: preset #0 has unknown fields ['sizes']"),
        (WORKER_ARGV, "PICFORGE_WORKER_CONCURRENCY", "0",
         "PICFORGE_WORKER_CONCURRENCY: Input should be greater than or equal to 1"),
        (WORKER_ARGV, "PICFORGE_RENDITIONS_BUCKET", "no-such-bucket",
         "PICFORGE_RENDITIONS_BUCKET: there is no bucket 'no-such-bucket'"),
        (WORKER_ARGV, "PICFORGE_QUEUE_URL", NO_SUCH_QUEUE,
         f"PICFORGE_QUEUE_URL: there is no queue {NO_SUCH_QUEUE!r}"),
    ],
    ids=["pool-size", "queue-url", "endpoint", "database", "bucket", "preset-field", "concurrency",
         "renditions-bucket", "no-queue"],
)  # fmt: skip
def test_process_stops_with_one_line_naming_a_wrong_setting(
    argv: list[str],
    setting: str,
    value: str | None,
    says: str,
    stack: Stack,
    emulator: Emulator,
    database_url: str,
) -> None:
    env = {
        **os.environ,
        "PICFORGE_DATABASE_URL": database_url,
        "PICFORGE_AWS_ENDPOINT_URL": emulator.url,
        "PICFORGE_UPLOADS_BUCKET": stack.names.uploads_bucket,
        "PICFORGE_RENDITIONS_BUCKET": stack.names.renditions_bucket,
        "PICFORGE_QUEUE_URL": stack.queue_url,
    }
    if value is None:
        del env[setting]
    else:
        env[setting] = value

    result = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("picforge ")]
    assert says in line, result.stderr


@pytest.mark.timeout(300)
@pytest.mark.parametrize("argv", [API_ARGV, WORKER_ARGV], ids=["api", "worker"])
def test_process_names_a_setting_no_picforge_process_reads(
    argv: list[str], stack: Stack, emulator: Emulator, database_url: str, tmp_path: Path
) -> None:
    """A typo (here in `.env`) or a removed setting is warned of at start-up, with the setting
    it is closest to; a setting of the other process is not. The process then stops on the
    missing queue URL, the quickest way out."""
    (tmp_path / ".env").write_text("PICFORGE_DB_POOL_SIZ=3\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PICFORGE_")},
        "PICFORGE_DATABASE_URL": database_url,
        "PICFORGE_AWS_ENDPOINT_URL": emulator.url,
        "PICFORGE_UPLOADS_BUCKET": stack.names.uploads_bucket,
        "PICFORGE_RENDITIONS_BUCKET": stack.names.renditions_bucket,
        "PICFORGE_DB_MAX_OVERFLOW": "10",  # removed in favour of one pool size
        "PICFORGE_WORKER_CONCURRENCY": "2",  # the worker's, also set for the API in `make dev`
        "PICFORGE_MAX_UPLOAD_BYTES": "1000000",  # the API's
        "PYTHONPATH": str(REPO_ROOT),
    }

    result = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )

    assert result.returncode == 1
    warnings = [line for line in result.stderr.splitlines() if "not a picforge setting" in line]
    assert len(warnings) == 2, result.stderr
    assert "PICFORGE_DB_MAX_OVERFLOW is not a picforge setting, and is ignored" in warnings[0]
    assert warnings[1].endswith(
        "PICFORGE_DB_POOL_SIZ is not a picforge setting, and is ignored; "
        "did you mean PICFORGE_DB_POOL_SIZE?"
    )
    assert "PICFORGE_QUEUE_URL: is required but not set" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(300)
def test_process_stops_with_one_line_on_an_env_file_that_is_not_text(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"PICFORGE_QUEUE_URL=\xff\xfe\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICFORGE_")}

    result = subprocess.run(
        WORKER_ARGV,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("picforge ")]
    assert line.startswith("picforge worker: .env: cannot be read (UnicodeDecodeError"), line


@pytest.mark.timeout(300)
def test_devstack_stops_with_one_line_on_a_dev_key_of_the_wrong_form() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICFORGE_")}

    result = subprocess.run(
        [sys.executable, "-m", "devstack", "--port", "0"],
        cwd=REPO_ROOT,
        env={**env, "PICFORGE_DEV_API_KEY": "my-own-key"},
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "make dev: PICFORGE_DEV_API_KEY: expected pf_<16 hex digits>_<at least 43 base64url "
        "characters> (`picforge keys create` prints one), or unset it for a new key"
    )
