"""The render sandbox: limits the kernel enforces, a killed child replaced, the other slots
unaffected."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import pyvips
import uvloop

from tests.worker.hostile import multiscan_baseline_jpeg
from worker import sandbox
from worker.decoding import decoder_errors_rejected
from worker.pool import Finished, RenderLimitExceeded, RenderPool, RenderProcessDied
from worker.renditions import Limits, Preset, render

MiB = 1024 * 1024


def spin(seconds: float) -> int:
    """Burn CPU for `seconds` of CPU time (not wall time: a busy machine must not matter)."""
    started = sandbox.cpu_time_s()
    turns = 0
    while sandbox.cpu_time_s() - started < seconds:
        turns += 1
    return turns


def spin_within(budget_s: float, seconds: float) -> int:
    sandbox.limit_cpu(budget_s)
    return spin(seconds)


def allocate(megabytes: int) -> int:
    block = bytearray(megabytes * MiB)
    return len(block)


def allocate_in_libvips(side: int) -> None:
    with decoder_errors_rejected():
        pyvips.Image.black(side, side, bands=3).copy_memory()


def die(signum: int) -> None:
    os.kill(os.getpid(), signum)


def fail() -> None:
    raise ValueError("a plain error crosses back as itself")


async def test_render_pool_runs_jobs_and_reports_their_cost() -> None:
    pool = RenderPool(1, memory_bytes=512 * MiB)
    try:
        finished = await pool.run_measured(allocate, 64, cpu_s=5)

        assert finished.value == 64 * MiB
        assert finished.usage.peak_rss_bytes is not None
        assert finished.usage.peak_rss_bytes >= 64 * MiB
        with pytest.raises(ValueError, match="crosses back"):
            await pool.run(fail, cpu_s=5)
        assert pool.replaced == 0
    finally:
        pool.close()


async def test_render_pool_kills_a_job_over_its_cpu_budget_and_replaces_the_child() -> None:
    kills: list[str] = []
    pool = RenderPool(1, on_kill=kills.append)
    try:
        started = time.monotonic()
        with pytest.raises(RenderLimitExceeded) as overrun:
            await pool.run(spin, 60, cpu_s=1)

        assert overrun.value.code == "cpu_limit_exceeded"
        assert time.monotonic() - started < 30  # killed at about 1-2 s of CPU, not 60
        assert kills == ["cpu"]
        assert await pool.run(pow, 2, 10, cpu_s=1) == 1024  # a new child
    finally:
        pool.close()


async def test_render_pool_job_can_only_lower_its_budget() -> None:
    pool = RenderPool(1)
    try:
        with pytest.raises(RenderLimitExceeded, match="CPU") as lowered:
            await pool.run(spin_within, 1, 60, cpu_s=30)  # lowered to 1 s
        assert lowered.value.usage.cpu_s == 1  # the kill is reported at the lowered budget
        with pytest.raises(RenderLimitExceeded, match="CPU"):
            await pool.run(spin_within, 60, 60, cpu_s=1)  # 60 s asked, 1 s allowed
        assert await pool.run(spin_within, 1, 0.1, cpu_s=30) > 0  # the next job starts fresh
    finally:
        pool.close()


async def test_render_pool_fails_a_job_over_its_memory_cap() -> None:
    kills: list[str] = []
    pool = RenderPool(1, memory_bytes=512 * MiB, on_kill=kills.append)
    try:
        with pytest.raises(RenderLimitExceeded) as overrun:
            await pool.run(allocate, 1024, cpu_s=10)

        assert overrun.value.code == "memory_limit_exceeded"
        assert kills == ["memory"]
        assert await pool.run(allocate, 64, cpu_s=10) == 64 * MiB
    finally:
        pool.close()


async def test_render_pool_calls_libvips_failing_an_allocation_a_memory_overrun() -> None:
    # libvips reports a failed allocation as an error, as it does a corrupt row: under the cap
    # it is the budget running out, never a verdict on the image.
    pool = RenderPool(1, memory_bytes=512 * MiB)
    try:
        with pytest.raises(RenderLimitExceeded) as overrun:
            await pool.run(allocate_in_libvips, 20_000, cpu_s=10)  # 1.2 GB of pixels

        assert overrun.value.code == "memory_limit_exceeded"
        assert await pool.run(allocate_in_libvips, 1_000, cpu_s=10) is None
    finally:
        pool.close()


async def test_render_pool_calls_libjpeg_failing_an_allocation_a_memory_overrun() -> None:
    # libjpeg says "Insufficient memory" when the coefficients of a JPEG of several scans do not
    # fit (600 MB here); quarantine, which would refuse this one, is left out.
    data = multiscan_baseline_jpeg(10_000, 10_000)
    pool = RenderPool(1, memory_bytes=512 * MiB)
    try:
        with pytest.raises(RenderLimitExceeded) as overrun:
            await pool.run(
                render, data, presets=(Preset("t", 64, 64),), limits=Limits(None, None), cpu_s=30
            )

        assert overrun.value.code == "memory_limit_exceeded"
    finally:
        pool.close()


async def test_render_pool_crash_is_a_verdict_and_an_outside_kill_is_not() -> None:
    pool = RenderPool(1)
    try:
        with pytest.raises(RenderLimitExceeded) as crash:
            await pool.run(die, signal.SIGSEGV, cpu_s=5)
        assert crash.value.code == "corrupt_image"
        with pytest.raises(RenderProcessDied):
            await pool.run(die, signal.SIGKILL, cpu_s=5)  # as the kernel's OOM killer would
        assert pool.replaced == 2
    finally:
        pool.close()


async def test_render_pool_other_slots_keep_working_while_one_child_is_killed() -> None:
    pool = RenderPool(2)
    try:
        overrun = asyncio.create_task(pool.run(spin, 60, cpu_s=2))
        # While one slot burns its budget, the other renders job after job.
        results = [await pool.run(pow, 3, n, cpu_s=5) for n in range(5)]
        assert results == [1, 3, 9, 27, 81]
        with pytest.raises(RenderLimitExceeded):
            await overrun
        assert pool.replaced == 1
        assert await asyncio.gather(*(pool.run(pow, 2, n, cpu_s=5) for n in range(4))) == [
            1,
            2,
            4,
            8,
        ]
    finally:
        pool.close()


async def test_render_pool_cancelled_job_kills_its_child() -> None:
    pool = RenderPool(1)
    rendering = asyncio.create_task(pool.run(time.sleep, 60, cpu_s=5))
    await asyncio.sleep(0.5)
    rendering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await rendering
    assert pool.replaced == 1
    assert await pool.run(pow, 2, 3, cpu_s=5) == 8

    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 5


def test_render_pool_talks_to_its_children_under_uvloop() -> None:
    """uvloop's readers leave a descriptor non-blocking. An original or a reply larger than
    the pipe holds must still cross, and no child be taken for dead: two slots rendering side
    by side lost most jobs within eight."""
    noise = pyvips.Image.gaussnoise(2000, 1500, mean=128, sigma=40)
    original = noise.bandjoin([noise, noise]).cast("uchar").jpegsave_buffer()

    async def render_side_by_side() -> list[object]:
        pool = RenderPool(2, memory_bytes=1024 * MiB)
        try:
            jobs = [pool.run_measured(render, original, cpu_s=30) for _ in range(8)]
            return await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            pool.close()

    finished = uvloop.run(render_side_by_side())

    assert all(isinstance(job, Finished) and job.error is None for job in finished), finished
