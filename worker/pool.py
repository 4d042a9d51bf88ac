"""The render sandbox: one child process per render slot, each under limits the kernel enforces.

Cancelling an `await` does not stop a decoder, and a `ProcessPoolExecutor` breaks whole when one
of its processes dies, without saying which job killed it. So each slot here is one process of
our own (`worker.sandbox` is the code that runs in it), fed one job at a time over a pipe:

- its address space is capped (`RLIMIT_AS`, `memory_bytes`): a render that needs more gets
  `MemoryError` (or its codec fails an allocation) instead of taking the task's memory;
- each job has a CPU-time budget (`RLIMIT_CPU`, `cpu_s`; the job may lower it once it knows the
  image's size): past it, the kernel sends SIGXCPU and the child dies;
- a job cancelled by its caller (the job timeout, a drain running out) kills the child.

A dead child is replaced before its slot takes another job, and the other slots never notice.
An overrun is reported as `RenderLimitExceeded` with a stable code: a verdict on the image,
not something to retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Final, Generic, Literal, TypeVar, cast

from worker import sandbox
from worker.sandbox import Usage

log = logging.getLogger(__name__)

T = TypeVar("T")
V = TypeVar("V")

KillReason = Literal["cpu", "memory", "crash"]

# What a kill is called in metrics and logs, and the failure code its image gets.
LIMIT_CODES: Final[dict[KillReason, str]] = {
    "cpu": "cpu_limit_exceeded",
    "memory": "memory_limit_exceeded",
    "crash": "corrupt_image",  # a codec that crashes on these bytes will crash on them again
}

# Deaths that are the job's own doing (a codec crashing), as opposed to a SIGKILL from outside
# (the kernel's OOM killer, which may have picked this child for a sibling's appetite).
_CRASH_SIGNALS: Final = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE})
# glib aborts the process when an allocation fails (g_malloc), which under the address-space
# cap is how libvips runs out of memory; its codecs report errors instead of aborting.
_OUT_OF_MEMORY_SIGNALS: Final = frozenset({signal.SIGABRT})


class RenderLimitExceeded(Exception):
    """The job overran a limit (or crashed its process); its child is already replaced."""

    def __init__(self, reason: KillReason, detail: str, usage: Usage) -> None:
        super().__init__(detail)
        self.reason = reason
        self.code = LIMIT_CODES[reason]
        self.detail = detail
        self.usage = usage  # a killed child's peak memory is unknown, and under its cap


class RenderProcessDied(Exception):
    """The child was killed from outside (not by a limit): transient, the job may be retried."""


@dataclass(frozen=True)
class Finished(Generic[V]):
    """A job's return value, or the exception it raised (`error`), and what it cost."""

    value: V | None
    usage: Usage
    error: Exception | None = None

    def result(self) -> V:
        if self.error is not None:
            raise self.error
        return cast(V, self.value)


class _Slot:
    def __init__(self, index: int, memory_bytes: int | None, preload: tuple[str, ...]) -> None:
        self.index = index
        self._memory_bytes = memory_bytes
        self._preload = preload
        self.process: BaseProcess | None = None
        self.connection: Connection | None = None
        # Held while a child starts: a replacement warming up in a thread and the next job
        # must not both start one.
        self._starting = threading.Lock()
        self._closed = False

    def ensure_started(self) -> tuple[BaseProcess, Connection]:
        with self._starting:
            if self._closed:
                raise RenderProcessDied("the render pool is closed")
            return self._ensure_started()

    def close(self) -> None:
        with self._starting:
            self._closed = True
            self.discard()

    def _ensure_started(self) -> tuple[BaseProcess, Connection]:
        if self.process is None or self.connection is None or not self.process.is_alive():
            self.discard()
            context = _context(self._preload)
            ours, theirs = context.Pipe(duplex=True)
            process = context.Process(
                target=sandbox.serve,
                args=(theirs, self._memory_bytes, self._preload),
                name=f"picforge-render-{self.index}",
                daemon=True,
            )
            process.start()
            theirs.close()
            self.process, self.connection = process, ours
        return self.process, self.connection

    def warm(self) -> None:
        with contextlib.suppress(RenderProcessDied):  # closed meanwhile: nothing to warm
            self.ensure_started()

    def discard(self) -> None:
        """Kill the child (if alive) and forget it; the next job starts a new one."""
        process, connection = self.process, self.connection
        self.process = self.connection = None
        if connection is not None:
            connection.close()
        if process is not None:
            if process.is_alive():
                process.kill()
            process.join(timeout=5)
            process.close()


def _context(preload: tuple[str, ...]) -> multiprocessing.context.ForkServerContext:
    """Children forked from a fork server: not from the worker (forking a process that runs an
    event loop and holds sockets is unsafe), and not spawned afresh (a fresh interpreter takes
    seconds to import the codecs on a busy task, and a killed child's slot waits for it). The
    server imports `preload` once; each child starts from that clean state in milliseconds."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))  # used when the server starts, i.e. once
    return context


class RenderPool:
    def __init__(
        self,
        processes: int,
        *,
        memory_bytes: int | None = None,
        preload: tuple[str, ...] = (),
        on_kill: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.processes = processes
        self.memory_bytes = memory_bytes
        self._on_kill = on_kill
        self._slots = [_Slot(index, memory_bytes, preload) for index in range(processes)]
        self._idle: asyncio.Queue[_Slot] | None = None
        self.replaced = 0

    async def run(
        self, function: Callable[..., T], /, *args: object, cpu_s: float, **kwargs: object
    ) -> T:
        return (await self.run_measured(function, *args, cpu_s=cpu_s, **kwargs)).result()

    async def run_measured(
        self, function: Callable[..., T], /, *args: object, cpu_s: float, **kwargs: object
    ) -> Finished[T]:
        """`function(*args, **kwargs)` in a render child, with at most `cpu_s` of CPU time.

        What the function raised comes back in `Finished.error`. Raises `RenderLimitExceeded`
        on an overrun or a crash; `RenderProcessDied` if the child was killed from outside."""
        if self._idle is None:
            self._idle = asyncio.Queue()
            for slot in self._slots:
                self._idle.put_nowait(slot)
        slot = await self._idle.get()
        try:
            return await self._run_in(slot, function, args, kwargs, cpu_s)
        finally:
            self._idle.put_nowait(slot)

    async def _run_in(
        self,
        slot: _Slot,
        function: Callable[..., T],
        args: tuple[object, ...],
        kwargs: dict[str, object],
        cpu_s: float,
    ) -> Finished[T]:
        # In a thread: the first start of the fork server imports the codecs, seconds on a busy
        # task, and the event loop has messages to keep hidden meanwhile.
        process, connection = await asyncio.to_thread(slot.ensure_started)
        budget_s = cpu_s  # until the job lowers it (it says so: `sandbox.limit_cpu`)
        try:
            # In a thread: a pipe takes 64 KiB before it blocks, an original is megabytes, and
            # a child still starting reads nothing yet. The event loop must not wait on it.
            await asyncio.to_thread(connection.send, (function, args, kwargs, cpu_s))
            reply: sandbox.Reply = None
            while True:
                await _readable(connection, process)
                if not connection.poll():
                    break  # it died
                message = await asyncio.to_thread(connection.recv)
                if isinstance(message, sandbox.BudgetLowered):
                    budget_s = message.cpu_s
                    continue
                reply = message
                break
        except (EOFError, OSError, BrokenPipeError):
            reply = None  # it died while we talked to it
        except BaseException:
            # Cancelled (a job timeout, a drain running out): nobody wants this render; a
            # decoder cannot be interrupted, so its process goes.
            log.warning("render process %d killed: its job was cancelled", slot.index)
            self._replace(slot, "cancelled")
            raise
        if reply is None:
            raise self._died(slot, process, budget_s)
        outcome, value, usage = reply
        if outcome == "memory":
            self._replace(slot, "memory")
            raise RenderLimitExceeded(
                "memory",
                f"out of memory at the render process's cap of {self.memory_bytes} B",
                usage,
            )
        if outcome == "error":
            return Finished(None, usage, cast(Exception, value))
        return Finished(cast(T, value), usage)

    def _died(self, slot: _Slot, process: BaseProcess, budget_s: float) -> Exception:
        # A killed child's peak memory is unknown (and under its cap); at SIGXCPU, its CPU time
        # was its budget, to the whole second the kernel counts in.
        usage = Usage(float(math.ceil(budget_s)), None)
        process.join(timeout=5)
        exitcode = process.exitcode
        signum = -exitcode if exitcode is not None and exitcode < 0 else None
        if signum == signal.SIGXCPU:
            self._replace(slot, "cpu")
            return RenderLimitExceeded(
                "cpu", f"the render ran out of its CPU-time budget of {budget_s:.1f} s", usage
            )
        if signum is not None and signum in _OUT_OF_MEMORY_SIGNALS:
            self._replace(slot, "memory")
            return RenderLimitExceeded(
                "memory", f"the render process aborted at its memory cap ({signum})", usage
            )
        if signum is not None and signum in _CRASH_SIGNALS:
            self._replace(slot, "crash")
            name = signal.Signals(signum).name
            return RenderLimitExceeded("crash", f"the render process crashed ({name})", usage)
        self._replace(slot, "died")
        return RenderProcessDied(f"the render process exited ({exitcode})")

    def _replace(self, slot: _Slot, reason: str) -> None:
        pid = slot.process.pid if slot.process is not None else None
        log.error("render process %d (pid %s) gone (%s); replacing it", slot.index, pid, reason)
        slot.discard()
        # Warm the replacement now, off the event loop, so the slot's next job finds it ready.
        threading.Thread(target=slot.warm, name="render-replace", daemon=True).start()
        self.replaced += 1
        self._on_kill(reason)

    def close(self) -> None:
        """Stop every render child. A render still running has been cancelled by the drain
        (nobody awaits it), and waiting for it could outlast the container's stop timeout."""
        for slot in self._slots:
            slot.close()


async def _readable(connection: Connection, process: BaseProcess) -> None:
    """Until the child has replied or died, without a thread: both are file descriptors. They
    are left blocking, as the pipe's sends and receives in threads need: uvloop's `add_reader`
    makes a descriptor non-blocking, and a send or receive of more than the pipe holds then
    failed with EAGAIN, which read as the child's death."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    descriptors = (connection.fileno(), process.sentinel)
    for descriptor in descriptors:
        loop.add_reader(descriptor, wake)
    try:
        await ready
    finally:
        for descriptor in descriptors:
            loop.remove_reader(descriptor)
            os.set_blocking(descriptor, True)
