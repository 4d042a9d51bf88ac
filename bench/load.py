"""Load and soak against the dev stack: clients create, upload and poll, and nothing is lost.

    uv run python bench/load.py [--clients 8] [--seconds 60]
    uv run python bench/load.py --soak --seconds 600 --rate 2

Starts `python -m devstack` (embedded PostgreSQL, the emulator, the API and the worker, as
`make dev` runs them) on loopback ports, then runs the clients in this process:

  load  `--clients` clients, each in a loop: create, upload the bytes to S3 with the ticket,
        poll until `ready` or `failed`; for `--seconds`
  soak  one image every 1/`--rate` seconds, whatever the answers, for `--seconds`; every
        10 s the RSS, open descriptors and sockets of the API and worker processes (the
        worker's render children included) are sampled, and the slope of each is reported

Reports creates/s, upload -> ready p50/p95/p99, answers by status, images lost (uploaded, never
finished) and 5xx answers, and the worker's own CPU per finished image: the worker process alone,
not its render children, so what it costs outside the render (S3, SQS, PostgreSQL, handing the
bytes to a child). Then, against the same emulator, the S3 and SQS calls the worker makes per
image made alone by the worker's own clients (bench/calls_alone.py), and the worker's figure
over theirs: what the worker adds to the calls it cannot do without. Exits 1 if any image was
lost or any answer was a 5xx: those are the promises; the rest are figures (bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from PIL import Image, ImageFilter

from calls_alone import calls_alone_cpu_ms
from devstack.ports import free_port, wait_for_port
from service.keys import generate_key

REPO_ROOT = Path(__file__).resolve().parents[1]
MAX_IMAGES = 20_000  # a bound on top of the time bound
POLL_S = 0.05
FINISH_GRACE_S = 120  # after the clients stop, how long images may still take to finish
SAMPLE_EVERY_S = 10
CALLS_ALONE_ROUNDS = 40


def photo_like(width: int, height: int) -> bytes:
    """A JPEG with texture and smooth regions, as a phone photo has (about 2 bits a pixel)."""
    noise = Image.effect_noise((width, height), 40).filter(ImageFilter.GaussianBlur(1.5))
    gradient = Image.linear_gradient("L").resize((width, height))
    picture = Image.merge("RGB", (noise, gradient, Image.blend(noise, gradient, 0.5)))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    created: int = 0
    uploaded: dict[str, float] = field(default_factory=dict)  # image id -> upload done at
    finished: dict[str, tuple[str, float]] = field(default_factory=dict)  # -> status, latency

    def answer(self, response: httpx.Response) -> httpx.Response:
        self.statuses[response.status_code] += 1
        return response

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    def lost(self) -> list[str]:
        return [image_id for image_id in self.uploaded if image_id not in self.finished]


async def one_image(
    http: httpx.AsyncClient, s3: httpx.AsyncClient, data: bytes, tally: Tally
) -> None:
    body = {"filename": "load.jpg", "content_type": "image/jpeg", "size_bytes": len(data)}
    created = tally.answer(await http.post("/v1/images", json=body))
    if created.status_code != 201:
        return
    tally.created += 1
    image = created.json()
    ticket = image["upload"]
    sent = await s3.post(
        ticket["url"], data=ticket["fields"], files={"file": ("f", data, "image/jpeg")}
    )
    if sent.status_code != 204:
        tally.statuses[-sent.status_code] += 1  # negative: S3's answer, not the API's
        return
    uploaded_at = time.monotonic()
    tally.uploaded[image["id"]] = uploaded_at
    deadline = uploaded_at + FINISH_GRACE_S
    while time.monotonic() < deadline:
        record = tally.answer(await http.get(f"/v1/images/{image['id']}"))
        if record.status_code == 200 and record.json()["status"] in ("ready", "failed"):
            tally.finished[image["id"]] = (record.json()["status"], time.monotonic() - uploaded_at)
            return
        await asyncio.sleep(POLL_S)


async def warm_up(api_url: str, key: str, data: bytes) -> None:
    """One image through the whole stack, so the worker's start (imports, its render children)
    is not counted as the cost of the images measured."""
    async with api_and_s3(api_url, key) as (http, s3):
        tally = Tally()
        await one_image(http, s3, data, tally)
    if not tally.finished:
        raise RuntimeError("the warm-up image never finished")


async def run_load(api_url: str, key: str, data: bytes, *, clients: int, seconds: float) -> Tally:
    tally = Tally()
    stop_at = time.monotonic() + seconds

    async def client() -> None:
        async with api_and_s3(api_url, key) as (http, s3):
            while time.monotonic() < stop_at and tally.created < MAX_IMAGES:
                await one_image(http, s3, data, tally)

    await asyncio.gather(*(client() for _ in range(clients)))
    return tally


async def run_soak(
    api_url: str, key: str, data: bytes, *, rate: float, seconds: float, stack: psutil.Process
) -> tuple[Tally, list[dict[str, float]]]:
    tally = Tally()
    samples: list[dict[str, float]] = []
    started = time.monotonic()
    async with api_and_s3(api_url, key) as (http, s3):
        images: set[asyncio.Task[None]] = set()
        next_sample = started
        for sent in range(int(seconds * rate)):
            now = time.monotonic()
            if now >= next_sample:
                samples.append({"t": now - started, **sample_processes(stack)})
                next_sample += SAMPLE_EVERY_S
            task = asyncio.create_task(one_image(http, s3, data, tally))
            images.add(task)
            task.add_done_callback(images.discard)
            await asyncio.sleep(max(0.0, started + (sent + 1) / rate - time.monotonic()))
        await asyncio.gather(*images)
        samples.append({"t": time.monotonic() - started, **sample_processes(stack)})
    return tally, samples


@asynccontextmanager
async def api_and_s3(
    api_url: str, key: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """The API's client (with the key) and a plain one for S3."""
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as http,
        httpx.AsyncClient(timeout=30) as s3,
    ):
        yield http, s3


def role_of(process: psutil.Process) -> str | None:
    command = " ".join(process.cmdline())
    if " serve " in f"{command} ":
        return "api"
    if "-m worker" in command:
        return "worker"
    return None


def sample_processes(stack: psutil.Process) -> dict[str, float]:
    """RSS (MiB), open descriptors and sockets of the API and of the worker with its render
    children."""
    totals: Counter[str] = Counter()
    for process in stack.children(recursive=True):
        try:
            role = role_of(process)
            if role is None:
                continue
            for member in (process, *process.children(recursive=True)):
                totals[f"{role}_rss_mib"] += member.memory_info().rss / 2**20
                totals[f"{role}_fds"] += member.num_fds()
                totals[f"{role}_sockets"] += len(member.net_connections(kind="all"))
        except psutil.NoSuchProcess:
            continue
    return dict(totals)


def worker_process(stack: psutil.Process) -> psutil.Process:
    """The worker's main process (its render children run under its fork server)."""
    for process in stack.children(recursive=True):
        if role_of(process) == "worker":
            return process
    raise RuntimeError("the dev stack runs no worker")


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def slope_per_minute(samples: list[dict[str, float]], name: str) -> float:
    """Least-squares slope of `name` over time, per minute."""
    points = [(sample["t"], sample.get(name, 0.0)) for sample in samples]
    if len(points) < 2:
        return 0.0
    return statistics.linear_regression(*zip(*points, strict=True)).slope * 60


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def report(tally: Tally, seconds: float) -> dict[str, Any]:
    latencies = [latency for status, latency in tally.finished.values() if status == "ready"]
    return {
        "creates_per_s": round(tally.created / seconds, 1),
        "images_uploaded": len(tally.uploaded),
        "images_ready": len(latencies),
        "images_failed": sum(status == "failed" for status, _ in tally.finished.values()),
        "upload_to_ready_ms": {
            name: round(percentile(latencies, fraction) * 1000)
            for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        },
        "answers_by_status": dict(sorted(tally.statuses.items())),
        "images_lost": len(tally.lost()),
        "server_errors": tally.server_errors,
    }


def start_stack(port: int, key: str, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PICFORGE_DEV_PORT": str(port),
        "PICFORGE_DEV_API_KEY": key,
        "PICFORGE_WORKER_METRICS_PORT": str(free_port()),
        # The load is one owner's: it measures the pipeline, not the per-owner limits.
        "PICFORGE_CREATE_RATE_PER_MINUTE": str(10**6),
        "PICFORGE_CREATE_BURST": str(10**4),
        "PICFORGE_MAX_AWAITING_UPLOAD": str(10**6),
        "PICFORGE_MAX_IN_FLIGHT_PER_OWNER": str(10**4),
    }
    with open(log_path, "wb") as log:
        stack = subprocess.Popen(
            [sys.executable, "-m", "devstack"],
            env=env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for_port(port, timeout_s=180, is_alive=lambda: stack.poll() is None)
    return stack


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--soak", action="store_true", help="a steady rate, sampling the processes")
    parser.add_argument("--rate", type=float, default=2.0, help="images a second, with --soak")
    parser.add_argument("--side", type=int, default=1600, help="the JPEG's width (4:3)")
    args = parser.parse_args()
    data = photo_like(args.side, args.side * 3 // 4)
    port, key = free_port(), generate_key()
    log_path = Path(tempfile.mkdtemp(prefix="picforge-load-")) / "devstack.log"
    stack = start_stack(port, key, log_path)
    api_url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(warm_up(api_url, key, data))
        worker = worker_process(psutil.Process(stack.pid))
        worker_cpu_before = cpu_s(worker)
        if args.soak:
            tally, samples = asyncio.run(
                run_soak(
                    api_url,
                    key,
                    data,
                    rate=args.rate,
                    seconds=args.seconds,
                    stack=psutil.Process(stack.pid),
                )
            )
            result = report(tally, args.seconds)
            result["samples"] = samples
            result["slope_per_minute"] = {
                name: round(slope_per_minute(samples, name), 3)
                for name in samples[-1]
                if name != "t"
            }
        else:
            tally = asyncio.run(
                run_load(api_url, key, data, clients=args.clients, seconds=args.seconds)
            )
            result = report(tally, args.seconds)
        finished = result["images_ready"] + result["images_failed"]
        worker_ms = (cpu_s(worker) - worker_cpu_before) / max(1, finished) * 1000
        calls_ms = asyncio.run(calls_alone_cpu_ms(worker.environ(), data, CALLS_ALONE_ROUNDS))
        result["worker_cpu_ms_per_image"] = round(worker_ms, 1)
        result["calls_alone_cpu_ms_per_image"] = round(calls_ms, 1)
        result["worker_over_calls_alone"] = round(worker_ms / calls_ms, 2)
    finally:
        stack.send_signal(signal.SIGTERM)
        stack.wait(60)
    result["machine"] = f"{os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    result["settings"] = vars(args) | {"jpeg_bytes": len(data), "stack_log": str(log_path)}
    print(json.dumps(result, indent=2))
    if result["images_lost"] or result["server_errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
