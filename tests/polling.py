"""The one way a test waits for something: poll a check until it holds, up to a deadline."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    *,
    timeout_s: float = 30,
    interval_s: float = 0.05,
    what: str = "condition",
) -> T:
    """Call `check` (a function, or a coroutine function) until it returns something truthy;
    that value. Fails the test, naming `what` and the last value, after `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(interval_s)
