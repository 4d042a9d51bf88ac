"""A dependency goes away for a while under traffic, then comes back.

While it is gone the API answers 503 problems within a bounded time (never a hang, a 500 or a
traceback) and `/readyz` says so; once it is back, both processes recover by themselves (no
restart), and every image uploaded before, during and after ends `ready`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from contextlib import AbstractContextManager

import pytest

from tests.database_relay import DatabaseRelay
from tests.reliability.conftest import Deployment, Figures, sample_png, settle
from tests.reliability.traffic import MAX_ANSWER_S, poll_readyz, run_traffic

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

OUTAGE_S = 30
BEFORE_S = 3
# Recovery is measured from the end of the outage to the first image a new create and upload
# takes to `ready`; it must come within this.
RECOVERY_LIMIT_S = 30


async def _first_ready_after(deployment: Deployment, data: bytes) -> float:
    """Seconds until a new image, created and uploaded now, is `ready` (retrying refusals)."""
    started = time.monotonic()
    stop = asyncio.Event()
    before = set(deployment.uploaded)
    probe = asyncio.create_task(run_traffic(deployment, data, clients=1, stop=stop))
    try:
        while True:
            statuses = await deployment.statuses()
            if any(statuses.get(i) == "ready" for i in set(deployment.uploaded) - before):
                return time.monotonic() - started
            assert time.monotonic() - started < RECOVERY_LIMIT_S, "no recovery"
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await probe


async def _probe_readyz(deployment: Deployment, seconds: float) -> Counter[int]:
    stop = asyncio.Event()
    probing = asyncio.create_task(poll_readyz(deployment, stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await probing


async def _outage_under_traffic(
    deployment: Deployment, outage: AbstractContextManager[None], figures: Figures, name: str
) -> None:
    data = sample_png(640, 480)
    stop_traffic = asyncio.Event()
    traffic = asyncio.create_task(run_traffic(deployment, data, stop=stop_traffic))
    await asyncio.sleep(BEFORE_S)
    with outage:
        during = await _probe_readyz(deployment, OUTAGE_S)
    recovery_s = await _first_ready_after(deployment, data)
    after = await _probe_readyz(deployment, 2.0)
    stop_traffic.set()
    seen = await traffic
    records = await settle(deployment)

    assert seen.bad_answers == []
    assert seen.server_errors_beyond_503 == 0
    assert seen.statuses[0] == 0, "the API itself stopped answering"
    assert seen.slowest_s < MAX_ANSWER_S
    assert during[503] > 0 and during[200] == 0, during
    assert after[200] > 0, after
    assert deployment.api.running() and deployment.worker.running()
    lost = [i for i, record in records.items() if record is None]
    not_ready = {i: r["error"] for i, r in records.items() if r and r["status"] != "ready"}
    assert lost == [] and not_ready == {}
    figures.add(
        fault=name,
        behaviour=f"{seen.statuses[503]} answers were 503 problems, slowest "
        f"{seen.slowest_s:.1f} s; /readyz 503 throughout",
        recovery_s=recovery_s,
        images=len(records),
        lost=len(lost),
        stuck=0,
    )


async def test_database_outage_answers_503_then_recovers(
    deployment: Deployment, figures: Figures
) -> None:
    await _outage_under_traffic(
        deployment, deployment.postgres.down(), figures, f"PostgreSQL stopped for {OUTAGE_S} s"
    )


async def test_silent_database_answers_503_then_recovers(
    relayed_deployment: tuple[Deployment, DatabaseRelay], figures: Figures
) -> None:
    """Nothing refused, nothing answered: a black-holed route, a primary gone in a failover."""
    deployment, relay = relayed_deployment
    await _outage_under_traffic(
        deployment,
        relay.silenced(),
        figures,
        f"PostgreSQL silent for {OUTAGE_S} s (nothing refused or answered; API statement "
        "wait 3 s, worker job timeout 20 s)",
    )


async def test_emulator_outage_answers_503_then_recovers(
    deployment: Deployment, figures: Figures
) -> None:
    await _outage_under_traffic(
        deployment, deployment.emulator.down(), figures, f"S3 and SQS stopped for {OUTAGE_S} s"
    )
