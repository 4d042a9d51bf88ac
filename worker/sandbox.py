"""What runs inside a render child (see `worker.pool`): receive a job, run it under its CPU
budget, send back the result and what it cost.

The limits are the kernel's, set here in the child: an address-space cap for the child's life
(`RLIMIT_AS`) and, per job, a CPU-time limit (`RLIMIT_CPU`, whose soft limit raises SIGXCPU,
which kills the process). A job may lower its own budget once it knows its image's size
(`limit_cpu`); nothing a job does can raise it above what the parent allowed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import importlib
import math
import pickle
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Final, Literal

Outcome = Literal["ok", "error", "memory"]
Reply = tuple[Outcome, object, "Usage"] | None

# glibc's mallopt(M_ARENA_MAX): each thread arena reserves 64 MiB of address space, which an
# address-space cap would count; two arenas are plenty for one job at a time.
_M_ARENA_MAX: Final = -8


@dataclass(frozen=True)
class Usage:
    """What one job cost its child: CPU time (all threads) and peak resident memory."""

    cpu_s: float
    peak_rss_bytes: int | None  # None where the kernel cannot reset the peak per job


@dataclass(frozen=True)
class BudgetLowered:
    """Sent to the parent when a job lowers its budget, so a kill can be reported as such."""

    cpu_s: float


@dataclass
class _Budget:
    started_cpu_s: float = 0.0
    allowed_s: float = math.inf
    connection: Connection | None = None


_budget = _Budget()


def cpu_time_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def limit_cpu(seconds: float) -> None:
    """Lower the running job's CPU budget to `seconds` from its start (never raise it)."""
    _set_budget(min(seconds, _budget.allowed_s))
    if _budget.connection is not None:
        _budget.connection.send(BudgetLowered(_budget.allowed_s))


def _set_budget(seconds: float) -> None:
    _budget.allowed_s = seconds
    if math.isinf(seconds):
        soft = resource.RLIM_INFINITY
    else:
        # Whole seconds (the kernel's granularity), and never at or below what is already used,
        # which would kill the child at once instead of at the budget.
        soft = max(math.ceil(_budget.started_cpu_s + seconds), math.ceil(cpu_time_s()) + 1)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def serve(connection: Connection, memory_bytes: int | None, preload: tuple[str, ...]) -> None:
    """The child's main loop, until the parent closes the pipe."""
    # Ctrl-C reaches the whole process group; the parent decides when its children stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for module in preload:
        importlib.import_module(module)  # before the cap, so imports are not counted per job
    _limit_malloc_arenas()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a SIGXCPU would otherwise dump core
    if memory_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    _budget.connection = connection
    while True:
        try:
            function, args, kwargs, cpu_s = connection.recv()
        except EOFError:
            return
        except MemoryError:
            reply: Reply = ("memory", None, Usage(0.0, None))
        else:
            reply = _run_job(function, args, kwargs, cpu_s)
        connection.send(_picklable(reply))
        if reply is not None and reply[0] == "memory":
            return  # a process that ran out of memory may be left in any state: start afresh


def _run_job(
    function: Callable[..., object],
    args: tuple[object, ...],
    kwargs: dict[str, object],
    cpu_s: float,
) -> Reply:
    peak_resettable = _reset_peak_rss()
    _budget.started_cpu_s = cpu_time_s()
    _set_budget(cpu_s)
    outcome: Outcome
    try:
        value = function(*args, **kwargs)
        outcome = "ok"
    except MemoryError:
        outcome, value = "memory", None
    except OSError as exc:
        outcome, value = ("memory", None) if exc.errno == errno.ENOMEM else ("error", exc)
    except Exception as exc:
        outcome, value = "error", exc
    used = cpu_time_s() - _budget.started_cpu_s
    _set_budget(math.inf)
    return outcome, value, Usage(used, _peak_rss_bytes() if peak_resettable else None)


def _picklable(reply: Reply) -> Reply:
    """An exception that does not pickle crosses as its type and text."""
    if reply is None or reply[0] != "error":
        return reply
    try:
        pickle.dumps(reply[1])
    except Exception:
        error = reply[1]
        return ("error", RuntimeError(f"{type(error).__name__}: {error}"), reply[2])
    return reply


def _limit_malloc_arenas() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not glibc: no arenas to limit
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 2)


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # 5: reset the peak resident set size (Linux 4.0+)
    except OSError:
        return False
    return True


def _peak_rss_bytes() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
