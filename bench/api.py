"""API create cost, this code against another version's, side by side in one run.

    uv run python bench/api.py [--seconds 8] [--connections 16] [--rounds 3]
                               [--baseline DIR]   # e.g. `git archive <commit> | tar -x -C DIR`
                               [--limiter-off]    # this code with its limiter off, beside it

Starts embedded PostgreSQL and the ministack emulator (the devstack helpers), migrates,
provisions, makes an API key, then runs one `picforge serve` process (uvicorn) of this code
on a loopback port, and with `--baseline` one of the code in DIR beside it, on the same
database and emulator; with `--limiter-off`, one more of this code with
`PICFORGE_LIMITS_ENABLED=false`. This code's limiter runs with limits no create reaches
(every create takes its token and checks both quotas, none is refused), so the difference
between the two is what the limiter costs a create. This process is the load generator: an
aiohttp loop of `--connections` keep-alive connections, each sending one request at a time,
for a bounded time and count. Phases alternate between the servers, `--rounds` times, so the
machine's other load falls on both alike. It measures:

  healthz  GET /healthz: no auth, no I/O, the floor every request pays on this machine
  create   POST /v1/images: the key lookup, the INSERT, a pre-signed POST (SigV4)

and prints requests/second, p50 and p99 latency, the API process's CPU per request (from
/proc, so other load on the machine barely moves it), each server's median over the rounds, and
the targets (API CPU per create at most 1 ms, p99 under 25 ms at 16 connections).
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
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
from alembic import command
from sqlalchemy import Insert, Select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import create_async_engine

from devstack.emulator import EMULATOR_CREDENTIALS, Emulator
from devstack.ports import LOOPBACK, free_port, wait_for_port
from devstack.postgres import EmbeddedPostgres
from devstack.provision import provision
from service.charges import CREATE_WITHIN_LIMITS, create_parameters
from service.config import DatabaseSettings
from service.creation import INSERT_FROM_KEY, new_image
from service.creation import Upload as DeclaredUpload
from service.db import alembic_config, create_sessionmaker
from service.keys import create_key, parse_key
from service.limits import Limits

CREATE_BODY = {"filename": "bench.jpg", "content_type": "image/jpeg", "size_bytes": 123456}
MAX_REQUESTS = 200_000  # a bound on top of the time bound
WARMUP_S = 1.5
TARGET_CPU_US = 1000.0
TARGET_P99_MS = 25.0
THIS_CODE = "this code"
LIMITER_OFF = "this code, limiter off"
# Limits the bench never reaches: the limiter does all its work and refuses nothing.
UNREACHABLE_LIMITS = {
    "PICFORGE_CREATE_RATE_PER_MINUTE": str(10**9),
    "PICFORGE_CREATE_BURST": str(10**9),
    "PICFORGE_MAX_AWAITING_UPLOAD": str(2**31 - 1),
    "PICFORGE_MAX_STORED_BYTES": str(2**62),
}


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


async def make_key(database_url: str) -> str:
    engine = create_async_engine(database_url)
    try:
        return await create_key(create_sessionmaker(engine), owner="bench")
    finally:
        await engine.dispose()


@contextmanager
def running_api(
    env: dict[str, str], port: int, source: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`picforge serve` of this code, or of the source tree `source` (its packages first on
    the path; the same virtualenv)."""
    argv = [sys.executable, "-c", "from service.cli import main; main()", "serve"]
    argv += ["--port", str(port), "--no-access-log"]
    if source is not None:
        env = {**env, "PYTHONPATH": str(source)}
    api = subprocess.Popen(argv, env=env, cwd=source)
    try:
        wait_for_port(port, timeout_s=120, is_alive=lambda: api.poll() is None)
        yield api
    finally:
        api.terminate()
        api.wait(15)


async def statement_cost(database_url: str, key: str, *, rounds: int, count: int = 400) -> None:
    """Each create statement alone, one at a time on one asyncpg connection, alternating: what
    the limiter costs the database (and the round trip), without the API's Python around it."""
    statements: dict[str, Insert | Select[Any]] = {
        "INSERT alone": INSERT_FROM_KEY,  # service.creation.insert_image's
        "INSERT with limiter": CREATE_WITHIN_LIMITS,
    }
    compiled = {name: s.compile(dialect=asyncpg_dialect()) for name, s in statements.items()}
    limits = Limits(10**9, 10**9, 1, 2**31 - 1, 2**62)
    parsed = parse_key(key)
    timings: dict[str, list[float]] = {name: [] for name in statements}
    connection = await asyncpg.connect(database_url)
    try:
        prepared = {name: await connection.prepare(str(c)) for name, c in compiled.items()}
        for _ in range(rounds):
            for name, statement in prepared.items():
                order = compiled[name].positiontup or []
                started = time.perf_counter()
                for _ in range(count):
                    image = new_image(owner="", upload=DeclaredUpload("b.jpg", "image/jpeg", 9))
                    values = {
                        **compiled[name].params,
                        **create_parameters(parsed, image, limits),
                        "id": image.id,
                    }
                    await statement.fetch(*(values[p] for p in order))
                timings[name].append((time.perf_counter() - started) / count * 1e6)
    finally:
        await connection.close()
    plain, guarded = (sorted(t)[len(t) // 2] for t in timings.values())
    for name, values in timings.items():
        print(f"{name:<20} {sorted(values)[len(values) // 2]:6.0f} us/statement (one at a time)")
    print(f"statement with limiter / alone = {guarded / plain:.2f}x")


def print_limiter_cost(on: list[Result], off: list[Result]) -> None:
    for label, value in [
        ("API CPU", lambda r: r.server_cpu_us),
        ("p50", lambda r: r.percentile(50)),
        ("p99", lambda r: r.percentile(99)),
    ]:
        ratios = sorted(value(a) / value(b) for a, b in zip(on, off, strict=True))
        print(
            f"limiter on / off, {label} per create: median {ratios[len(ratios) // 2]:.2f}x "
            f"(rounds {', '.join(f'{r:.2f}' for r in ratios)})"
        )


def median(results: list[Result], value: Callable[[Result], float]) -> float:
    return sorted(value(result) for result in results)[len(results) // 2]


def summary(name: str, results: list[Result]) -> str:
    cpu = median(results, lambda r: r.server_cpu_us)
    p50 = median(results, lambda r: r.percentile(50))
    p99 = median(results, lambda r: r.percentile(99))
    rate = median(results, lambda r: r.rate)
    return (
        f"{name:<22} {rate:>6.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
        f"API CPU {cpu:5.0f} us/create"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per phase")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="phases per server, alternating")
    parser.add_argument("--baseline", type=Path, help="source tree of the version to compare")
    parser.add_argument(
        "--limiter-off",
        action="store_true",
        help="also run this code with PICFORGE_LIMITS_ENABLED=false: the limiter's cost",
    )
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
            **UNREACHABLE_LIMITS,
        }
        sources: dict[str, tuple[Path | None, dict[str, str]]] = {THIS_CODE: (None, env)}
        if args.limiter_off:
            sources = {LIMITER_OFF: (None, {**env, "PICFORGE_LIMITS_ENABLED": "false"}), **sources}
        if args.baseline:
            sources = {
                f"baseline ({args.baseline.name})": (args.baseline.resolve(), env),
                **sources,
            }
        ports = {name: free_port() for name in sources}
        servers = {
            name: stack.enter_context(running_api(server_env, ports[name], source))
            for name, (source, server_env) in sources.items()
        }
        headers = {"Authorization": f"Bearer {key}"}
        healthz: dict[str, list[Result]] = {name: [] for name in servers}
        create: dict[str, list[Result]] = {name: [] for name in servers}
        for round_ in range(args.rounds):
            for name, server in servers.items():
                base_url = f"http://{LOOPBACK}:{ports[name]}"
                if round_ == 0:
                    healthz[name].append(
                        asyncio.run(
                            load(
                                base_url,
                                name="healthz",
                                send=lambda http: http.get("/healthz"),
                                connections=args.connections,
                                seconds=args.seconds,
                                server_pid=server.pid,
                            )
                        )
                    )
                create[name].append(
                    asyncio.run(
                        load(
                            base_url,
                            name="create",
                            send=lambda http: http.post(
                                "/v1/images", json=CREATE_BODY, headers=headers
                            ),
                            connections=args.connections,
                            seconds=args.seconds,
                            server_pid=server.pid,
                        )
                    )
                )
                print(f"round {round_ + 1} {name}: {create[name][-1].line()}", flush=True)
        if args.limiter_off:
            asyncio.run(statement_cost(postgres.url, key, rounds=args.rounds))

    print(f"\n{args.connections} connections, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    for name in servers:
        print(f"{name}: {healthz[name][0].line()}")
    for name in servers:
        print(summary(name, create[name]))
    mine = create[THIS_CODE]
    cpu, p99 = median(mine, lambda r: r.server_cpu_us), median(mine, lambda r: r.percentile(99))
    print(
        f"API CPU per create {cpu:.0f} us (target <= {TARGET_CPU_US:.0f} us: "
        f"{'met' if cpu <= TARGET_CPU_US else 'NOT met'})"
    )
    print(
        f"create p99 {p99:.1f} ms (target < {TARGET_P99_MS:.0f} ms: "
        f"{'met' if p99 < TARGET_P99_MS else 'NOT met'})"
    )
    for name in servers:
        if name != THIS_CODE:
            base = median(create[name], lambda r: r.server_cpu_us)
            print(f"API CPU per create: this code / {name} = {cpu / base:.2f}x")
    if args.limiter_off:
        print_limiter_cost(mine, create[LIMITER_OFF])


if __name__ == "__main__":
    main()
