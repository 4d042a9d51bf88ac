"""Start-up checks: a wrong setting stops a process with one line naming it, never a traceback.

Every process (`picforge serve`, `picforge migrate`, the worker, `make dev`) reads its settings
through `load_settings` and runs under `exit_on_bad_configuration`, which turns the errors below
into `SystemExit("picforge <process>: PICFORGE_X: what is expected")`:

    ConfigurationError     a value of the wrong form, a missing setting, an unreachable endpoint
    SchemaNotMigrated      the database is reachable but not migrated

A `PICFORGE_*` name that no picforge process reads (a typo, a removed setting) stops nothing,
since nothing reads it; `load_settings` warns of it by name instead of ignoring it silently.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Final, TypeVar

import aioboto3
import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
)
from dotenv import dotenv_values
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from sqlalchemy.exc import SQLAlchemyError

from service.aws import client_config
from service.config import WORKER_ONLY_SETTINGS, ApiSettings, AwsSettings, DatabaseSettings
from service.db import SchemaNotMigrated, create_engine, require_migrated
from service.storage import s3_client_config

log = logging.getLogger(__name__)

ENV_PREFIX = "PICFORGE_"
# Read by the tools rather than a settings class: the CLI (service.api_client), `make dev` and
# the test suite (tests/browser/conftest.py, tests/worker/test_hostile_corpus.py).
TOOL_VARIABLES: Final = frozenset(
    {
        "PICFORGE_API_KEY",
        "PICFORGE_API_URL",
        "PICFORGE_DEV_API_KEY",
        "PICFORGE_DEV_PORT",
        "PICFORGE_MINISTACK",
        "PICFORGE_TEST_ARTIFACTS",
        "PICFORGE_HOSTILE_TABLE",
    }
)
KNOWN_VARIABLES: Final = TOOL_VARIABLES | {
    f"{ENV_PREFIX}{name.upper()}" for name in (*ApiSettings.model_fields, *WORKER_ONLY_SETTINGS)
}
# Where pydantic-settings also reads settings from (`env_file` in service.config), from the
# working directory.
ENV_FILE: Final = Path(".env")
CONNECT_TIMEOUT_S = 15
S = TypeVar("S", bound=BaseSettings)
# What connecting to an unreachable or refusing PostgreSQL raises, through SQLAlchemy or not.
UNREACHABLE_DATABASE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
# SQS's codes for a queue URL it does not know (in its query and its JSON protocol), or cannot
# read as one.
NO_QUEUE = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "InvalidAddress"}
)


class ConfigurationError(Exception):
    """A setting that cannot work; the message names it and says what is expected."""


def describe_validation_error(exc: ValidationError) -> str:
    """`PICFORGE_X: what is wrong`, for each setting that failed, on one line."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required but not set"
        field = next((str(part) for part in error["loc"] if isinstance(part, str)), None)
        # A check over several fields (a model validator) names its settings itself.
        problems.append(f"{ENV_PREFIX}{field.upper()}: {message}" if field else message)
    return "; ".join(problems)


def load_settings(settings_class: type[S]) -> S:
    try:
        from_file = dotenv_values(ENV_FILE)
    except (OSError, UnicodeDecodeError) as exc:  # pydantic-settings would raise it, unexplained
        raise ConfigurationError(f"{ENV_FILE}: cannot be read ({first_line(exc)})") from None
    for warning in unknown_settings({**from_file, **os.environ}):
        log.warning("%s", warning)
    try:
        return settings_class()
    except ValidationError as exc:
        raise ConfigurationError(describe_validation_error(exc)) from None


def unknown_settings(variables: Mapping[str, object]) -> list[str]:
    """A warning for each `PICFORGE_*` name in `variables` that no picforge process reads,
    naming the setting it is most likely a typo of. Names are matched without case, as
    pydantic-settings matches them."""
    warnings = []
    for name in sorted(variables):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in KNOWN_VARIABLES:
            continue
        closest = difflib.get_close_matches(upper, KNOWN_VARIABLES, n=1, cutoff=0.8)
        hint = f"; did you mean {closest[0]}?" if closest else ""
        warnings.append(f"{name} is not a picforge setting, and is ignored{hint}")
    return warnings


def database_setting(settings: DatabaseSettings) -> str:
    return f"{ENV_PREFIX}DATABASE_URL" if settings.database_url else f"{ENV_PREFIX}DB_HOST"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


async def check_database(settings: DatabaseSettings) -> None:
    """Reachable within CONNECT_TIMEOUT_S, and migrated (else `SchemaNotMigrated`)."""
    try:
        url = settings.sqlalchemy_url
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    engine = create_engine(settings)
    try:
        await asyncio.wait_for(require_migrated(engine), CONNECT_TIMEOUT_S)
    except (*UNREACHABLE_DATABASE, SQLAlchemyError) as exc:
        host = url.split("@")[-1].split("?")[0]
        raise ConfigurationError(
            f"{database_setting(settings)}: cannot connect to PostgreSQL at {host} "
            f"({first_line(exc)}); expected a reachable PostgreSQL server"
        ) from None
    finally:
        await engine.dispose()


def aws_endpoint(settings: AwsSettings, service: str) -> str:
    return settings.aws_endpoint_url or f"{service} in {settings.aws_region}"


@contextmanager
def reaching_aws(settings: AwsSettings, service: str) -> Iterator[None]:
    """Turn `service`'s endpoint out of reach, or no credentials, into the setting to fix."""
    where = aws_endpoint(settings, service)
    try:
        yield
    except (EndpointConnectionError, ConnectTimeoutError, TimeoutError, OSError) as exc:
        setting = "AWS_ENDPOINT_URL" if settings.aws_endpoint_url else "AWS_REGION"
        raise ConfigurationError(
            f"{ENV_PREFIX}{setting}: nothing answers at {where} ({first_line(exc)}); "
            f"expected a reachable {service} endpoint"
        ) from None
    except NoCredentialsError:
        raise ConfigurationError(
            "no AWS credentials: expected a task role on AWS, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY for an emulator"
        ) from None


def error_code(exc: ClientError) -> str | None:
    return exc.response.get("Error", {}).get("Code")


async def check_s3(settings: AwsSettings) -> None:
    """The S3 endpoint answers and both buckets exist: a worker writing to no renditions
    bucket would fail every image it takes. Other refusals (a role without the permission to
    ask) are left for /readyz to report."""
    where = aws_endpoint(settings, "S3")
    async with aioboto3.Session().client(
        "s3",
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        config=client_config(settings).merge(s3_client_config(settings)),
    ) as s3:
        for setting, bucket in (
            ("UPLOADS_BUCKET", settings.uploads_bucket),
            ("RENDITIONS_BUCKET", settings.renditions_bucket),
        ):
            try:
                with reaching_aws(settings, "S3"):
                    await asyncio.wait_for(s3.head_bucket(Bucket=bucket), CONNECT_TIMEOUT_S)
            except ClientError as exc:
                if error_code(exc) in {"404", "NoSuchBucket"}:
                    raise ConfigurationError(
                        f"{ENV_PREFIX}{setting}: there is no bucket {bucket!r} at {where}; "
                        "expected an existing bucket"
                    ) from None


async def check_queue(settings: AwsSettings, queue_url: str) -> None:
    """The queue exists: a worker pointed at none would have nothing to consume. Other
    refusals are left for the process to report."""
    where = aws_endpoint(settings, "SQS")
    async with aioboto3.Session().client(
        "sqs",
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        config=client_config(settings),
    ) as sqs:
        try:
            with reaching_aws(settings, "SQS"):
                await asyncio.wait_for(
                    sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"]),
                    CONNECT_TIMEOUT_S,
                )
        except ClientError as exc:
            if error_code(exc) in NO_QUEUE:
                raise ConfigurationError(
                    f"{ENV_PREFIX}QUEUE_URL: there is no queue {queue_url!r} at {where} "
                    "(or this role may not read it: sqs:GetQueueAttributes); expected an "
                    "existing queue"
                ) from None


async def check_dependencies(
    database: DatabaseSettings, aws: AwsSettings, *, queue_url: str | None = None
) -> None:
    """What every long-running process needs before it starts (`database` and `aws` are
    usually one object), and the queue it consumes, if it does. The API only sends to its
    queue: its role may not read the queue's attributes (infra/iam.tf), and SQS answers a role
    that may not with the same QueueDoesNotExist as a queue that is not there."""
    await check_database(database)
    await check_s3(aws)
    if queue_url is not None:
        await check_queue(aws, queue_url)


@contextmanager
def exit_on_bad_configuration(process: str) -> Iterator[None]:
    try:
        yield
    except (ConfigurationError, SchemaNotMigrated) as exc:
        raise SystemExit(f"picforge {process}: {exc}") from None
