"""Telling the CDN that a deleted image's renditions are gone.

Renditions are cached for a year (`immutable`), at CloudFront's edges as in browsers. Their keys
carry a random per-image token (`service.storage.rendition_key`), so no one can name them from
an image id; but whoever was given a URL could keep fetching a cached copy after a DELETE. So
DELETE also invalidates the image's whole renditions path at the distribution
(`PICFORGE_CDN_DISTRIBUTION_ID`), one wildcard path per image, before it answers. CloudFront
completes an invalidation within minutes; until then an edge may still answer for the image.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from service.aws import open_cloudfront_client
from service.config import AwsSettings
from service.storage import renditions_prefix

log = logging.getLogger(__name__)


def invalidation_path(image_id: uuid.UUID) -> str:
    """Every rendition of the image, whatever its token or preset: one path, one charge."""
    return f"/{renditions_prefix(image_id)}*"


@dataclass(frozen=True)
class Cdn:
    # aiobotocore's CloudFront client (no type stubs are installed for it).
    cloudfront: Any
    distribution_id: str

    async def invalidate_image(self, image_id: uuid.UUID) -> str:
        """Invalidate the image's renditions; the invalidation's id. Retrying a DELETE asks
        again with the same caller reference, which CloudFront answers with the first one."""
        response = await self.cloudfront.create_invalidation(
            DistributionId=self.distribution_id,
            InvalidationBatch={
                "Paths": {"Quantity": 1, "Items": [invalidation_path(image_id)]},
                "CallerReference": f"picforge-delete-{image_id}",
            },
        )
        invalidation_id: str = response["Invalidation"]["Id"]
        log.info("cdn invalidation %s of image_id=%s", invalidation_id, image_id)
        return invalidation_id


async def open_cdn(
    stack: AsyncExitStack, settings: AwsSettings, distribution_id: str | None
) -> Cdn | None:
    """The CDN to invalidate, or None when no distribution is configured."""
    if not distribution_id:
        return None
    client = await open_cloudfront_client(stack, settings)
    return Cdn(cloudfront=client, distribution_id=distribution_id)
