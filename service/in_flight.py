"""How many requests each owner has in flight in this API process, and the cap on them.

The owner's rates and quotas (`service.limits`) bound what it creates. Its other requests
cost this process too: a listing of 100 images signs up to 400 URLs, about 100 ms of the event
loop, and every request holds one of the pool's database connections. So a request of an owner
that already has `PICFORGE_MAX_IN_FLIGHT_PER_OWNER` in flight here is refused at once, 429
`concurrency_limited` with `Retry-After: 1`: one owner's storm holds at most that many
connections and turns of the loop, and every other owner is answered meanwhile.

Counted in memory, per process: it protects the process it runs in, costs no database write
per request, and a client that awaits its answers before sending more never meets it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from service.errors import TooManyRequests


class InFlight:
    def __init__(self, max_per_owner: int) -> None:
        self.max_per_owner = max_per_owner
        self._counts: dict[str, int] = {}

    @contextmanager
    def taken(self, owner: str) -> Iterator[None]:
        """One of `owner`'s places, for as long as the block runs; refused if none is free."""
        held = self._counts.get(owner, 0)
        if held >= self.max_per_owner:
            raise TooManyRequests(
                f"this owner has {held} requests in flight here, the most it may have at "
                "once: retry after 1 s",
                code="concurrency_limited",
                limit="in_flight",
                headers={"Retry-After": "1"},
            )
        self._counts[owner] = held + 1
        try:
            yield
        finally:
            self._counts[owner] -= 1
            if not self._counts[owner]:
                del self._counts[owner]
