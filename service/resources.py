"""The long-lived collaborators of the API process, opened once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service.cdn import Cdn
from service.config import ApiSettings
from service.in_flight import InFlight
from service.readiness import Readiness
from service.storage import PostPolicySigner

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient


@dataclass(frozen=True)
class Resources:
    settings: ApiSettings
    engine: AsyncEngine
    # The same engine and pool, in autocommit: lone statements in one round trip.
    statements: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    s3: S3Client
    # Signs URLs for clients; differs from `s3` only when clients see another endpoint.
    presigner: S3Client
    # Sends reprocess jobs to the worker's queue.
    sqs: SQSClient
    readiness: Readiness
    # The CDN a DELETE invalidates, when one fronts the renditions bucket.
    cdn: Cdn | None = None
    # Each owner's requests in flight in this process; None with limits off.
    in_flight: InFlight | None = None

    @cached_property
    def upload_signer(self) -> PostPolicySigner:
        """Signs upload tickets as `presigner` would, remembering each bucket's URL."""
        return PostPolicySigner(self.presigner)
