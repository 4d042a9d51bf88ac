"""API create-upload throughput against the same server's /healthz, in one run.

    uv run python bench/api.py [--seconds 8] [--connections 16]

Starts embedded PostgreSQL and the ministack emulator (the devstack helpers), migrates,
provisions, makes an API key, then runs ONE `picforge serve` process (uvicorn) on a loopback
port. This process is the load generator: an aiohttp loop of `--connections` keep-alive
connections, each sending one request at a time, for a bounded time and count. It measures:

  healthz  GET /healthz: no auth, no I/O, the ceiling of this server + client on this machine
  create   POST /v1/images: the INSERT that checks the API key (shared by the creates that
           arrive together), a pre-signed POST (SigV4)

and prints requests/second, p50 and p99 latency, the API process's CPU per request (from
/proc, so other load on the machine barely moves it), create/healthz, and the targets (create at
least 0.25x healthz, p99 under 50 ms). Also the cost of signing alone, in this process, since
signing was once the single most expensive step of a create.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aioboto3
import aiohttp
from alembic import command
from sqlalchemy.ext.asyncio import create_async_engine

from devstack.emulator import EMULATOR_CREDENTIALS, Emulator
from devstack.ports import LOOPBACK, free_port, wait_for_port
from devstack.postgres import EmbeddedPostgres
from devstack.provision import Stack, provision
from service.config import AwsSettings, DatabaseSettings
from service.db import alembic_config, create_sessionmaker
from service.keys import create_key
from service.storage import PostPolicySigner, presign_put, presign_upload, s3_client_config

CREATE_BODY = {"filename": "bench.jpg", "content_type": "image/jpeg", "size_bytes": 123456}
MAX_REQUESTS = 200_000  # a bound on top of the time bound
WARMUP_S = 1.5
TARGET_RATIO = 0.25
TARGET_P99_MS = 50.0


@dataclass(frozen=True)
class Result:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    # CPU time the API process spent over the measured requests (user + system).
    server_cpu_s: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def server_cpu_us(self) -> float:
        return self.server_cpu_s / self.requests * 1e6

    def line(self) -> str:
        return (
            f"{self.name:<8} {self.rate:>8.0f} req/s   p50 {self.percentile(50):6.2f} ms   "
            f"p99 {self.percentile(99):6.2f} ms   API CPU {self.server_cpu_us:5.0f} us/req   "
            f"({self.requests} requests, {self.errors} errors)"
        )


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far, from /proc: unlike req/s, other load on
    the machine barely moves it."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(
    base_url: str,
    *,
    name: str,
    send: Callable[[aiohttp.ClientSession], Any],
    connections: int,
    seconds: float,
    server_pid: int,
) -> Result:
    """`connections` loops, each one request at a time, for `seconds` (after a warm-up)."""
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(base_url, connector=connector) as http:
        latencies: list[float] = []
        errors = 0
        recording = False
        stop_at = 0.0
        count = 0

        async def loop() -> None:
            nonlocal errors, count
            while time.perf_counter() < stop_at and count < MAX_REQUESTS:
                started = time.perf_counter()
                async with send(http) as response:
                    await response.read()
                    ok = response.status < 300
                if recording:
                    count += 1
                    latencies.append((time.perf_counter() - started) * 1000)
                    errors += not ok

        stop_at = time.perf_counter() + WARMUP_S
        await asyncio.gather(*(loop() for _ in range(connections)))
        recording = True
        cpu_before = process_cpu_s(server_pid)
        began = time.perf_counter()
        stop_at = began + seconds
        await asyncio.gather(*(loop() for _ in range(connections)))
        elapsed = time.perf_counter() - began
        cpu = process_cpu_s(server_pid) - cpu_before
        return Result(name, count, elapsed, latencies, errors, cpu)


async def signing_cost(stack: Stack, endpoint: str, repeats: int = 2000) -> dict[str, float]:
    """Microseconds per pre-signed POST and PUT, on one client, in this process."""
    settings = AwsSettings(
        aws_endpoint_url=endpoint,
        uploads_bucket=stack.names.uploads_bucket,
        renditions_bucket=stack.names.renditions_bucket,
    )
    costs = {}
    async with aioboto3.Session().client(
        "s3", region_name="us-east-1", endpoint_url=endpoint, config=s3_client_config(settings)
    ) as s3:
        ticket: dict[str, Any] = {
            "bucket": settings.uploads_bucket,
            "content_type": "image/jpeg",
            "size_bytes": 1000,
            "expires_s": 300,
        }
        presigns = {
            "post": partial(presign_upload, PostPolicySigner(s3), **ticket),
            "put": partial(presign_put, s3, **ticket),
        }
        for name, presign in presigns.items():
            for phase in ("warm-up", "timed"):
                started = time.perf_counter()
                for n in range(repeats if phase == "timed" else 100):
                    await presign(key=f"originals/{n}")
            costs[name] = (time.perf_counter() - started) / repeats * 1e6
    return costs


async def make_key(database_url: str) -> str:
    engine = create_async_engine(database_url)
    try:
        return await create_key(create_sessionmaker(engine), owner="bench")
    finally:
        await engine.dispose()


@contextmanager
def running_api(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    argv = [sys.executable, "-c", "from service.cli import main; main()", "serve"]
    argv += ["--port", str(port), "--no-access-log"]
    api = subprocess.Popen(argv, env=env)
    try:
        wait_for_port(port, timeout_s=30, is_alive=lambda: api.poll() is None)
        yield api
    finally:
        api.terminate()
        api.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per phase")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    os.environ.update(EMULATOR_CREDENTIALS)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

    with ExitStack() as stack, tempfile.TemporaryDirectory() as scratch:
        postgres = stack.enter_context(EmbeddedPostgres())
        emulator = stack.enter_context(Emulator(log_path=Path(scratch) / "ministack.log"))
        database_url = DatabaseSettings(database_url=postgres.url).sqlalchemy_url
        command.upgrade(alembic_config(database_url), "head")
        provisioned = provision(emulator.url)
        key = asyncio.run(make_key(database_url))
        env = {
            **os.environ,
            "PICFORGE_DATABASE_URL": postgres.url,
            "PICFORGE_AWS_ENDPOINT_URL": emulator.url,
            "PICFORGE_UPLOADS_BUCKET": provisioned.names.uploads_bucket,
            "PICFORGE_RENDITIONS_BUCKET": provisioned.names.renditions_bucket,
            "PICFORGE_QUEUE_URL": provisioned.queue_url,
        }
        port = free_port()
        base_url = f"http://{LOOPBACK}:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        with running_api(env, port) as api:
            healthz = asyncio.run(
                load(
                    base_url,
                    name="healthz",
                    send=lambda http: http.get("/healthz"),
                    connections=args.connections,
                    seconds=args.seconds,
                    server_pid=api.pid,
                )
            )
            create = asyncio.run(
                load(
                    base_url,
                    name="create",
                    send=lambda http: http.post("/v1/images", json=CREATE_BODY, headers=headers),
                    connections=args.connections,
                    seconds=args.seconds,
                    server_pid=api.pid,
                )
            )
        signing = asyncio.run(signing_cost(provisioned, emulator.url))

    ratio = create.rate / healthz.rate
    print(f"\none uvicorn process, {args.connections} connections, {os.cpu_count()} CPUs")
    print(healthz.line())
    print(create.line())
    print(
        f"create/healthz {ratio:.2f}x  (target >= {TARGET_RATIO}x: "
        f"{'met' if ratio >= TARGET_RATIO else 'NOT met'})"
    )
    p99 = create.percentile(99)
    print(
        f"create p99 {p99:.1f} ms  (target < {TARGET_P99_MS:.0f} ms: "
        f"{'met' if p99 < TARGET_P99_MS else 'NOT met'})"
    )
    cpu_per_create_us = create.server_cpu_us
    print(
        f"signing alone: pre-signed POST {signing['post']:.0f} us, pre-signed PUT "
        f"{signing['put']:.0f} us: the POST is {signing['post'] / cpu_per_create_us:.0%} of the "
        f"{cpu_per_create_us:.0f} us of API CPU each create costs"
    )


if __name__ == "__main__":
    main()
