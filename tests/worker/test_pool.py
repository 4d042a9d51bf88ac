"""The render pool outlives a render process that dies, and stops renders nobody awaits."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from worker.pool import RenderPool


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def test_render_pool_replaces_itself_once_after_process_dies() -> None:
    restarts: list[int] = []
    pool = RenderPool(2, on_restart=lambda: restarts.append(1))
    try:
        # Two renders see the same pool break: one new pool, not two.
        results = await asyncio.gather(pool.run(die), pool.run(die), return_exceptions=True)

        assert [type(result) for result in results] == [BrokenProcessPool, BrokenProcessPool]
        assert (pool.restarts, restarts) == (1, [1])
        assert await pool.run(pow, 2, 10) == 1024
    finally:
        pool.close()


async def test_render_pool_close_stops_render_nobody_awaits() -> None:
    pool = RenderPool(1)
    rendering = asyncio.create_task(pool.run(time.sleep, 60))
    await asyncio.sleep(0.5)
    rendering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await rendering

    started = time.monotonic()
    pool.close()

    assert time.monotonic() - started < 5
