"""The render processes: Pillow never runs on the event loop.

A render process that dies (the kernel's OOM killer, a crash in a codec) breaks the whole
`ProcessPoolExecutor`: every render in it fails with `BrokenProcessPool`, and so would every
later one. `RenderPool` then starts a new executor, once, for all the renders that saw the
same one break; their messages are left for redelivery.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class RenderPool:
    def __init__(self, processes: int, *, on_restart: Callable[[], None] = lambda: None) -> None:
        self.processes = processes
        self._on_restart = on_restart
        self._executor = self._start()
        # Submitted renders not yet finished, awaited or not (a cancelled await leaves its
        # render running in its process).
        self._renders: set[Future[Any]] = set()
        self.restarts = 0

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: forking a process that runs an event loop and holds sockets is unsafe.
        return ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"))

    async def run(self, function: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """`function(*args, **kwargs)` in a render process. Raises BrokenProcessPool if the
        process died; the pool is already replaced by then."""
        executor = self._executor
        try:
            render = executor.submit(function, *args, **kwargs)
            self._renders.add(render)
            render.add_done_callback(self._renders.discard)
            return await asyncio.wrap_future(render)
        except BrokenProcessPool:
            self._replace(executor)
            raise

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if broken is not self._executor:
            return  # another render that shared the broken pool replaced it already
        log.error("a render process died; starting a new pool of %d", self.processes)
        broken.shutdown(wait=False, cancel_futures=True)
        self._executor = self._start()
        self.restarts += 1
        self._on_restart()

    def close(self) -> None:
        """Stop the render processes. Renders still running have been cancelled by the drain
        (nobody awaits them), and waiting for them could outlast the container's stop timeout:
        their processes are terminated."""
        executor = self._executor
        if any(not render.done() for render in list(self._renders)):
            # NOTE: Python 3.14 has `terminate_workers()`; until then, the executor's own table.
            for process in list((executor._processes or {}).values()):
                process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)
