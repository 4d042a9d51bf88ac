"""How many requests each owner has in flight in this API process, and the cap on them.

The owner's rates and quotas (`service.limits`) bound what it creates. Its other requests
cost this process too: a listing of 100 images signs up to 400 URLs, about 100 ms of the event
loop, and every request holds one of the pool's database connections. So each owner has
`PICFORGE_MAX_IN_FLIGHT_PER_OWNER` places here. A request that finds them all taken waits for
one, in line behind the owner's own requests only, for at most `WAIT_S`; then it is refused,
429 `concurrency_limited` with `Retry-After: 1`. A burst of the owner's is served a few at a
time; a storm holds at most that many connections and turns of the loop, and every other owner
is answered meanwhile.

Counted in memory, per process: it protects the process it runs in, and costs no database
write per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

from service.errors import TooManyRequests

# How long a request waits for one of its owner's places before it is refused.
WAIT_S: Final = 1.0


@dataclass
class _Places:
    free: asyncio.Semaphore
    # Requests holding a place or waiting for one: at none, the owner is forgotten.
    users: int = 0


class InFlight:
    def __init__(self, max_per_owner: int, *, wait_s: float = WAIT_S) -> None:
        self.max_per_owner = max_per_owner
        self.wait_s = wait_s
        self._owners: dict[str, _Places] = {}

    @asynccontextmanager
    async def taken(self, owner: str) -> AsyncIterator[None]:
        """One of `owner`'s places, for as long as the block runs; refused if none frees up
        within `wait_s`."""
        places = self._owners.setdefault(owner, _Places(asyncio.Semaphore(self.max_per_owner)))
        places.users += 1
        try:
            try:
                async with asyncio.timeout(self.wait_s):
                    await places.free.acquire()
            except TimeoutError:
                raise TooManyRequests(
                    f"this owner's {self.max_per_owner} requests in flight here, the most it "
                    f"may have at once, held their places for {self.wait_s:g} s: retry after 1 s",
                    code="concurrency_limited",
                    limit="in_flight",
                    headers={"Retry-After": "1"},
                ) from None
            try:
                yield
            finally:
                places.free.release()
        finally:
            places.users -= 1
            if not places.users:
                del self._owners[owner]
