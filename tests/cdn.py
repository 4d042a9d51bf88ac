"""A CloudFront distribution in front of the renditions bucket, made in the emulator."""

from __future__ import annotations

import uuid
from typing import Any


def create_distribution(cloudfront: Any, renditions_bucket: str) -> dict[str, str]:
    """The new distribution's `Id` and `ARN`."""
    created = cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": str(uuid.uuid4()),
            "Comment": "picforge renditions",
            "Enabled": True,
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "renditions",
                        "DomainName": f"{renditions_bucket}.s3.us-east-1.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "renditions",
                "ViewerProtocolPolicy": "redirect-to-https",
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                "MinTTL": 0,
            },
        }
    )
    distribution = created["Distribution"]
    return {"Id": distribution["Id"], "ARN": distribution["ARN"]}
