"""Schemathesis against the live API, with a valid key and every check it has: whatever the
document allows a client to send, the server accepts (and refuses what it does not allow),
answers without a 5xx and within the document, and a wrong method lists what is allowed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks

from devstack.ports import LOOPBACK, free_port
from service.config import ApiSettings
from service.main import create_app
from tests.conftest import KeyMaker

# Per operation and generation mode: enough to cover every parameter's edges, small enough that
# the whole run stays under a minute.
EXAMPLES_PER_OPERATION = 25


@pytest.fixture
async def live_api(api_settings: ApiSettings) -> AsyncIterator[str]:
    """The API served by uvicorn on a free loopback port, in this event loop."""
    port = free_port()
    config = uvicorn.Config(create_app(api_settings), host=LOOPBACK, port=port, log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "uvicorn exited during start-up"
        await asyncio.sleep(0.02)
    yield f"http://{LOOPBACK}:{port}"
    server.should_exit = True
    await serving


def check_operation(
    operation: Any, mode: GenerationMode, *, base_url: str, headers: dict[str, str]
) -> None:
    """Raise on the first case (shrunk) that breaks a check; pass if none does."""
    load_all_checks()
    checks = CHECKS.get_all()

    @hypothesis.settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=checks)

    # Unsatisfiable: nothing to get wrong (no parameters, no body: the health checks).
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        check()


def fuzz(base_url: str, key: str) -> list[str]:
    """Every operation, positive and negative data; the failures, as readable lines."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    headers = {"Authorization": f"Bearer {key}"}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                check_operation(operation, mode, base_url=base_url, headers=headers)
            except Exception as failure:  # collected, then reported together
                failures.append(f"{operation.label} [{mode.value}]: {failure}")
    return failures


async def test_api_conforms_to_its_openapi_document(live_api: str, make_key: KeyMaker) -> None:
    key = await make_key("schemathesis")

    failures = await asyncio.to_thread(fuzz, live_api, key)

    assert not failures, "\n\n".join(failures)
