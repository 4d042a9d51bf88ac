"""`picforge keys create OWNER --into-secret NAME` (service/key_secrets.py): the key lands in a new
Secrets Manager secret, works, and appears in no log line, argument or environment variable.

The command runs as the one-off ECS task would: a process whose every output line is what
CloudWatch Logs would keep, with its command line and environment as CloudTrail's RunTask
record would show them. The emulator's own log is searched as well.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import httpx
import pytest

from devstack.emulator import Emulator
from devstack.provision import Stack
from service.config import DatabaseSettings
from service.db import create_engine, create_sessionmaker
from service.key_secrets import SecretExists, create_key_in_secret
from service.keys import parse_key
from tests.conftest import REPO_ROOT

PICFORGE = [sys.executable, "-c", "from service.cli import main; main()"]


def secrets_client(emulator: Emulator):  # type: ignore[no-untyped-def]
    return boto3.client("secretsmanager", endpoint_url=emulator.url, region_name="us-east-1")


def run_task(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PICFORGE, *argv], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )


def task_environment(database_url: str, emulator: Emulator) -> dict[str, str]:
    return {
        **os.environ,
        "PICFORGE_DATABASE_URL": database_url,
        "PICFORGE_AWS_ENDPOINT_URL": emulator.url,
    }


def emulator_log(emulator: Emulator) -> str:
    path = getattr(emulator, "_log_path", None)
    return Path(path).read_text(errors="replace") if path else ""


async def test_keys_create_into_secret_stores_a_working_key_and_prints_only_the_arn(
    stack: Stack,
    emulator: Emulator,
    database_url: str,
    anonymous_client: httpx.AsyncClient,
) -> None:
    name = f"picforge-test/api-keys/acme-{uuid.uuid4().hex[:6]}"
    env = task_environment(database_url, emulator)
    argv = ["keys", "create", "acme", "--into-secret", name]

    task = run_task(argv, env)

    assert task.returncode == 0, task.stderr
    arn = task.stdout.splitlines()[-1]
    assert arn.startswith("arn:aws:secretsmanager:") and name in arn
    key = secrets_client(emulator).get_secret_value(SecretId=arn)["SecretString"]
    parsed = parse_key(key)
    response = await anonymous_client.get("/v1/images", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    # Every place the key could have leaked to: not even its secret half appears.
    for place, text in {
        "stdout": task.stdout,
        "stderr": task.stderr,
        "argv": " ".join(argv),
        "environment": "\n".join(f"{k}={v}" for k, v in env.items()),
        "emulator log": emulator_log(emulator),
    }.items():
        assert parsed.secret not in text, f"the key reached the {place}"
    assert parsed.key_id in task.stdout  # the public id, to find it in `keys list`
    tags = secrets_client(emulator).describe_secret(SecretId=arn)["Tags"]
    assert {"Key": "picforge:key-id", "Value": parsed.key_id} in tags


def test_keys_create_into_an_existing_secret_changes_nothing(
    stack: Stack, emulator: Emulator, database_url: str
) -> None:
    name = f"picforge-test/api-keys/taken-{uuid.uuid4().hex[:6]}"
    secrets_client(emulator).create_secret(Name=name, SecretString="someone else's")

    task = run_task(
        ["keys", "create", "acme", "--into-secret", name], task_environment(database_url, emulator)
    )

    assert task.returncode == 1
    assert f"secret {name} exists already" in task.stderr
    assert "Traceback" not in task.stderr
    value = secrets_client(emulator).get_secret_value(SecretId=name)["SecretString"]
    assert value == "someone else's"
    listed = run_task(["keys", "list"], task_environment(database_url, emulator))
    assert "acme" not in listed.stdout


async def test_create_key_in_secret_deletes_the_secret_when_the_database_refuses(
    stack: Stack,
    emulator: Emulator,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A key the database never recorded must not sit in a secret looking valid."""
    settings = DatabaseSettings(database_url=database_url, aws_endpoint_url=emulator.url)
    broken = create_engine(
        DatabaseSettings(
            database_url=database_url.replace("/postgres?", "/no_such_database?"),
            aws_endpoint_url=emulator.url,
        )
    )
    name = f"picforge-test/api-keys/broken-{uuid.uuid4().hex[:6]}"
    caplog.set_level(logging.DEBUG, logger="service")
    try:
        with pytest.raises(Exception, match="no_such_database"):
            await create_key_in_secret(
                create_sessionmaker(broken), settings, owner="acme", secret_name=name
            )
    finally:
        await broken.dispose()

    listed = secrets_client(emulator).list_secrets()["SecretList"]
    assert name not in [secret["Name"] for secret in listed]
    assert "deleting secret" in caplog.text and "pf_" not in caplog.text


def test_create_key_in_secret_refuses_a_bad_owner_before_making_anything() -> None:
    with pytest.raises(ValueError, match="owner"):
        asyncio.run(
            create_key_in_secret(
                None,  # type: ignore[arg-type]  # never reached
                DatabaseSettings(db_host="unused"),
                owner="Not An Owner",
                secret_name="x",
            )
        )
    assert issubclass(SecretExists, ValueError)  # the CLI prints it as a one-line error
