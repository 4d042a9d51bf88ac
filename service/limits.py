"""Each owner's fair share: two rate limits and two quotas, counted in PostgreSQL, so every API
process enforces the same ones and a deploy resets none of them.

    creates          POST /v1/images              `create_rate_per_minute`, `create_burst` at once
    reprocesses      POST /v1/images/{id}/reprocess  `reprocess_rate_per_minute` (that many at
                                                  once); only one that queues a render counts
    awaiting_upload  images created and not yet uploaded, at once
    stored_bytes     originals as declared, plus renditions as the worker recorded them

Defaults are settings (`service.config.LimitSettings`); `picforge limits` overrides them per
owner (`owner_limits`, `service.owner_limits`). The quotas' counts (`owner_usage`) are kept by
triggers on the images and their renditions (migration 0009), so they move with every write,
whoever makes it, and free as soon as an image is deleted.

How a create or a reprocess is charged, in one statement each: `service.charges`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from service.config import LimitSettings
from service.errors import TooManyRequests

WINDOW_S = 60


@dataclass(frozen=True)
class Limits:
    """The defaults every owner has unless overridden."""

    create_rate_per_minute: int
    create_burst: int
    reprocess_rate_per_minute: int
    max_awaiting_upload: int
    max_stored_bytes: int

    @classmethod
    def from_settings(cls, settings: LimitSettings) -> Limits | None:
        """None when limits are turned off."""
        if not settings.limits_enabled:
            return None
        return cls(
            create_rate_per_minute=settings.create_rate_per_minute,
            create_burst=settings.create_burst,
            reprocess_rate_per_minute=settings.reprocess_rate_per_minute,
            max_awaiting_upload=settings.max_awaiting_upload,
            max_stored_bytes=settings.max_stored_bytes,
        )


@dataclass(frozen=True)
class Rate:
    """One owner's rate limit, and where its TAT stands: `backlog_s` = max(TAT, now) - now."""

    name: str
    per_minute: int
    burst: int
    backlog_s: float

    @property
    def interval_s(self) -> float:
        return WINDOW_S / self.per_minute

    def headers(self) -> dict[str, str]:
        """draft-ietf-httpapi-ratelimit-headers: the policy, requests left at once (`r`), and
        seconds until the whole burst is back (`t`)."""
        room = self.burst * self.interval_s - self.backlog_s
        left = max(0, math.floor(room / self.interval_s + 1e-9))
        reset = max(0, math.ceil(self.backlog_s - 1e-9))
        return {
            "RateLimit-Policy": f'"{self.name}";q={self.per_minute};w={WINDOW_S}',
            "RateLimit": f'"{self.name}";r={left};t={reset}',
        }

    def retry_after_s(self) -> int:
        """Whole seconds until one more request is allowed (at least 1)."""
        wait = self.backlog_s - (self.burst - 1) * self.interval_s
        return max(1, math.ceil(wait - 1e-9))

    def refusal(self, code: str, detail: str) -> TooManyRequests:
        headers = {**self.headers(), "Retry-After": str(self.retry_after_s())}
        return TooManyRequests(detail, code=code, limit=self.name, headers=headers)
