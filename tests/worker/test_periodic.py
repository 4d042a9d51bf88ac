"""worker/periodic.py: what a periodic task logs when a period fails."""

from __future__ import annotations

import asyncio
import logging

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from devstack.ports import free_port
from service.config import DatabaseSettings
from service.db import create_engine, create_sessionmaker
from worker.abandoned import fail_abandoned_images
from worker.metrics import Metrics
from worker.periodic import log_failure


async def test_a_periodic_task_logs_one_line_a_period_while_the_database_is_away(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = create_engine(
        DatabaseSettings(database_url=f"postgresql://picforge@127.0.0.1:{free_port()}/x")
    )
    looking = asyncio.create_task(
        fail_abandoned_images(create_sessionmaker(nowhere), Metrics(), idle_s=60, every_s=0.05)
    )
    await asyncio.sleep(0.5)
    looking.cancel()
    await asyncio.wait([looking])
    await nowhere.dispose()

    lines = [record for record in caplog.records if record.name == "worker.abandoned"]
    assert len(lines) > 1
    for line in lines:
        assert line.levelno == logging.WARNING and line.exc_info is None
        assert line.getMessage().startswith(
            "could not look for abandoned images: the database is unavailable"
        )


def test_any_other_failure_of_a_periodic_task_logs_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    try:
        raise KeyError("a bug")
    except KeyError as error:
        log_failure(logging.getLogger("worker.sweep"), "sweep failed", error)

    (line,) = caplog.records
    assert line.levelno == logging.ERROR and line.exc_info is not None
    assert "KeyError: 'a bug'" in caplog.text


def test_s3_or_sqs_out_of_reach_is_one_line_too(caplog: pytest.LogCaptureFixture) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    for error in (
        EndpointConnectionError(endpoint_url=endpoint),
        ReadTimeoutError(endpoint_url=endpoint),
    ):
        log_failure(logging.getLogger("worker.sweep"), "sweep failed", error)

    assert len(caplog.records) == 2
    for line in caplog.records:
        assert line.levelno == logging.WARNING and line.exc_info is None
        assert line.getMessage().startswith("sweep failed: S3 or SQS is unreachable")
