"""Two `picforge serve` processes on one database enforce one owner's limit together: the
counts live in PostgreSQL, not in either process."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from devstack.emulator import Emulator
from devstack.ports import free_port, wait_for_port
from devstack.provision import Stack
from tests.conftest import OWNER, REPO_ROOT, KeyMaker

BODY = {"filename": "a.png", "content_type": "image/png", "size_bytes": 100}


@asynccontextmanager
async def api_process(env: dict[str, str]) -> AsyncIterator[str]:
    """`picforge serve` in its own process; its URL."""
    port = free_port()
    argv = [sys.executable, "-c", "from service.cli import main; main()", "serve"]
    process = await asyncio.create_subprocess_exec(
        *argv, "--port", str(port), "--no-access-log", cwd=REPO_ROOT, env=env
    )
    try:
        await asyncio.to_thread(
            wait_for_port, port, timeout_s=180, is_alive=lambda: process.returncode is None
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def test_two_api_processes_share_one_owners_create_limit(
    stack: Stack, emulator: Emulator, database_url: str, make_key: KeyMaker
) -> None:
    key = await make_key(OWNER)
    env = {
        **os.environ,
        "PICFORGE_DATABASE_URL": database_url,
        "PICFORGE_AWS_ENDPOINT_URL": emulator.url,
        "PICFORGE_UPLOADS_BUCKET": stack.names.uploads_bucket,
        "PICFORGE_RENDITIONS_BUCKET": stack.names.renditions_bucket,
        "PICFORGE_QUEUE_URL": stack.queue_url,
        # Six at once, then one a minute: no token comes back during the test.
        "PICFORGE_CREATE_BURST": "6",
        "PICFORGE_CREATE_RATE_PER_MINUTE": "1",
    }
    headers = {"Authorization": f"Bearer {key}"}
    async with AsyncExitStack() as processes, httpx.AsyncClient(headers=headers) as http:
        urls = await asyncio.gather(
            processes.enter_async_context(api_process(env)),
            processes.enter_async_context(api_process(env)),
        )
        # Taking turns: each process alone would allow six.
        responses = [
            (url, await http.post(f"{url}/v1/images", json=BODY)) for _ in range(6) for url in urls
        ]

    statuses = [response.status_code for _, response in responses]
    assert statuses == [201] * 6 + [429] * 6
    refused_by = {url for url, response in responses if response.status_code == 429}
    assert refused_by == set(urls)
    assert all(
        response.json()["code"] == "create_rate_limited"
        for _, response in responses
        if response.status_code == 429
    )
