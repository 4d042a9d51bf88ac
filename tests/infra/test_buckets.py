"""The local buckets are the production buckets: devstack/provision.py's description of
versioning, lifecycle rules and CORS is what infra/s3.tf declares, rule for rule."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.provision import BUCKET_LIFECYCLE, UPLOADS_CORS

from .terraform import Module

BUCKETS = ("uploads", "renditions")


def s3_api_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """One `rule` block of an aws_s3_bucket_lifecycle_configuration, in the S3 API's shape."""
    converted: dict[str, Any] = {"ID": rule["id"], "Status": rule["status"], "Filter": {}}
    assert rule.get("filter") in ([{}], {}, None), "rules apply to the whole bucket"
    if "abort_incomplete_multipart_upload" in rule:
        (abort,) = rule["abort_incomplete_multipart_upload"]
        converted["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": abort["days_after_initiation"]
        }
    if "noncurrent_version_expiration" in rule:
        (noncurrent,) = rule["noncurrent_version_expiration"]
        converted["NoncurrentVersionExpiration"] = {"NoncurrentDays": noncurrent["noncurrent_days"]}
    if "expiration" in rule:
        (expiration,) = rule["expiration"]
        converted["Expiration"] = {
            "ExpiredObjectDeleteMarker": expiration["expired_object_delete_marker"]
        }
    return converted


@pytest.mark.parametrize("bucket", BUCKETS)
def test_buckets_local_lifecycle_rules_are_production_rules(tf: Module, bucket: str) -> None:
    rules = tf.resource("aws_s3_bucket_lifecycle_configuration", bucket)["rule"]

    assert [s3_api_rule(rule) for rule in rules] == BUCKET_LIFECYCLE[bucket]


@pytest.mark.parametrize("bucket", BUCKETS)
def test_buckets_are_versioned_in_production_as_locally(tf: Module, bucket: str) -> None:
    (configuration,) = tf.resource("aws_s3_bucket_versioning", bucket)["versioning_configuration"]

    assert configuration["status"] == "Enabled"


def test_buckets_local_cors_is_production_cors(tf: Module) -> None:
    (rule,) = tf.resource("aws_s3_bucket_cors_configuration", "uploads")["cors_rule"]

    # A browser reads one response header of an upload: a multipart part's ETag.
    assert rule["expose_headers"] == ["ETag"]
    assert {
        "AllowedMethods": rule["allowed_methods"],
        "AllowedHeaders": rule["allowed_headers"],
        "ExposeHeaders": rule["expose_headers"],
        "MaxAgeSeconds": rule["max_age_seconds"],
    } == UPLOADS_CORS
