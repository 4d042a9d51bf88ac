"""`picforge serve --forwarded-allow-ips`: X-Forwarded-Proto/-For count only from the proxies
named (on AWS: the ALB's subnets, infra/containers.tf), so a redirect behind the ALB keeps
`https`, and a client talking to the port directly cannot claim another scheme or address."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.emulator import Emulator
from devstack.ports import free_port, wait_for_port
from devstack.provision import Stack
from tests.conftest import REPO_ROOT

PICFORGE = [sys.executable, "-c", "from service.cli import main; main()"]
FORWARDED = {
    "Host": "api.example.com",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "203.0.113.7",
}


def serve(
    trusted: str, stack: Stack, emulator: Emulator, database_url: str, log: Path
) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "PICFORGE_DATABASE_URL": database_url,
        "PICFORGE_AWS_ENDPOINT_URL": emulator.url,
        "PICFORGE_UPLOADS_BUCKET": stack.names.uploads_bucket,
        "PICFORGE_RENDITIONS_BUCKET": stack.names.renditions_bucket,
        "PICFORGE_QUEUE_URL": stack.queue_url,
    }
    argv = [*PICFORGE, "serve", "--port", str(port), "--forwarded-allow-ips", trusted]
    with log.open("wb") as output:
        api = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=output, stderr=output)
    try:
        wait_for_port(port, timeout_s=60, is_alive=lambda: api.poll() is None)
        yield f"http://127.0.0.1:{port}"
    finally:
        api.terminate()
        api.wait(timeout=30)


@pytest.fixture
def behind_the_proxy(
    stack: Stack, emulator: Emulator, database_url: str, tmp_path: Path
) -> Iterator[str]:
    """The API trusting the proxy this test talks from (127.0.0.1, as a CIDR like the ALB's)."""
    yield from serve("127.0.0.0/8", stack, emulator, database_url, tmp_path / "api.log")


@pytest.fixture
def reached_directly(
    stack: Stack, emulator: Emulator, database_url: str, tmp_path: Path
) -> Iterator[str]:
    """The API trusting only the ALB's subnets, which this test is not in."""
    yield from serve("10.42.0.0/24,10.42.1.0/24", stack, emulator, database_url, tmp_path / "a.log")


def test_redirect_behind_the_trusted_proxy_keeps_https(behind_the_proxy: str) -> None:
    response = httpx.get(f"{behind_the_proxy}/v1/images/", headers=FORWARDED)

    assert response.status_code == 307
    assert response.headers["location"] == "https://api.example.com/v1/images"


def test_forwarded_headers_from_anyone_else_are_ignored(reached_directly: str) -> None:
    response = httpx.get(f"{reached_directly}/v1/images/", headers=FORWARDED)

    assert response.status_code == 307
    assert response.headers["location"] == "http://api.example.com/v1/images"
