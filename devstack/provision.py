"""Create the buckets, queues and notification picforge needs on an S3/SQS endpoint.

`make dev` and the tests both provision through `provision()`, so the local stack is wired the
way `infra/` wires AWS: originals notify the queue, renditions never do, and a message that keeps
failing moves to the dead-letter queue. The buckets are set up as infra/s3.tf sets up
production's: versioned, with the same lifecycle rules, CORS and public-access block, so tests
see what S3 really keeps (noncurrent versions, delete markers). `BUCKET_LIFECYCLE` and
`UPLOADS_CORS` are the one description of those rules in Python; tests/infra/test_buckets.py
holds s3.tf to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from service.storage import ORIGINALS_PREFIX

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

# Deliveries before SQS moves a message to the dead-letter queue.
MAX_RECEIVE_COUNT = 5
DLQ_RETENTION_S = 14 * 24 * 3600

# Lifecycle rules per bucket (`uploads`, `renditions`), in the S3 API's shape. The worker and
# DELETE remove versions themselves; these are the backstop for anything a crash left behind.
BUCKET_LIFECYCLE: dict[str, list[dict[str, Any]]] = {
    bucket: [
        {
            "ID": "abort-incomplete-multipart-uploads",
            "Status": "Enabled",
            "Filter": {},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
        {
            "ID": "expire-noncurrent-versions",
            "Status": "Enabled",
            "Filter": {},
            "NoncurrentVersionExpiration": {"NoncurrentDays": noncurrent_days},
            "Expiration": {"ExpiredObjectDeleteMarker": True},
        },
    ]
    for bucket, noncurrent_days in (("uploads", 30), ("renditions", 7))
}
# Browsers upload originals straight to S3 with pre-signed POSTs and PUTs.
# A browser POSTs the ticket's form, or PUTs with the two headers a PUT ticket signs that a
# preflight asks for (Content-Type, and If-None-Match: an original is uploaded once), or PUTs
# the parts of a multipart upload. The one response header it reads is a part's ETag, which
# completing the upload names the part by: that alone is exposed.
UPLOADS_CORS: dict[str, Any] = {
    "AllowedMethods": ["POST", "PUT"],
    "AllowedHeaders": ["Content-Type", "If-None-Match"],
    "ExposeHeaders": ["ETag"],
    "MaxAgeSeconds": 3000,
}


@dataclass(frozen=True)
class StackNames:
    uploads_bucket: str = "picforge-uploads"
    renditions_bucket: str = "picforge-renditions"
    queue: str = "picforge-uploads"
    dead_letter_queue: str = "picforge-uploads-dlq"


@dataclass(frozen=True)
class Stack:
    names: StackNames
    queue_url: str
    queue_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str


def provision(
    endpoint_url: str,
    *,
    region: str = "us-east-1",
    names: StackNames | None = None,
    visibility_timeout_s: int = 180,
    cors_origins: tuple[str, ...] = ("http://127.0.0.1:8000", "http://localhost:8000"),
    credentials: dict[str, str] | None = None,
) -> Stack:
    names = names or StackNames()
    client_args: dict[str, Any] = {
        "endpoint_url": endpoint_url,
        "region_name": region,
        **_boto_credentials(credentials),
    }
    sqs: SQSClient = boto3.client("sqs", **client_args)
    s3: S3Client = boto3.client("s3", **client_args)

    dlq_url = sqs.create_queue(
        QueueName=names.dead_letter_queue,
        Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION_S)},
    )["QueueUrl"]
    dlq_arn = _queue_arn(sqs, dlq_url)
    queue_url = sqs.create_queue(
        QueueName=names.queue,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout_s),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
            ),
        },
    )["QueueUrl"]
    queue_arn = _queue_arn(sqs, queue_url)

    for role, bucket in (
        ("uploads", names.uploads_bucket),
        ("renditions", names.renditions_bucket),
    ):
        _create_private_bucket(s3, bucket, region)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={"Rules": BUCKET_LIFECYCLE[role]},  # type: ignore[typeddict-item]
        )
    s3.put_bucket_cors(
        Bucket=names.uploads_bucket,
        CORSConfiguration={
            "CORSRules": [{**UPLOADS_CORS, "AllowedOrigins": list(cors_origins)}]  # type: ignore[list-item]
        },
    )
    # AWS refuses the notification unless the queue already lets the bucket send to it.
    sqs.set_queue_attributes(
        QueueUrl=queue_url,
        Attributes={"Policy": json.dumps(s3_send_policy(queue_arn, names.uploads_bucket))},
    )
    s3.put_bucket_notification_configuration(
        Bucket=names.uploads_bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {"FilterRules": [{"Name": "prefix", "Value": ORIGINALS_PREFIX}]}
                    },
                }
            ]
        },
    )
    return Stack(
        names=names,
        queue_url=queue_url,
        queue_arn=queue_arn,
        dead_letter_queue_url=dlq_url,
        dead_letter_queue_arn=dlq_arn,
    )


def s3_send_policy(queue_arn: str, bucket: str) -> dict[str, Any]:
    """Lets exactly one bucket's notifications into the queue."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "UploadsBucketNotifies",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
            }
        ],
    }


def _create_private_bucket(s3: S3Client, bucket: str, region: str) -> None:
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(
            Bucket=bucket,
            CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
        )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )


def _queue_arn(sqs: SQSClient, queue_url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]


def _boto_credentials(credentials: dict[str, str] | None) -> dict[str, str]:
    if not credentials:
        return {}
    return {
        "aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": credentials["AWS_SECRET_ACCESS_KEY"],
    }


def main() -> None:
    """`python -m devstack.provision --endpoint-url URL`: provision an emulator such as
    LocalStack in docker-compose, and print the queue URL."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m devstack.provision", description=main.__doc__)
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument(
        "--cors-origin",
        action="append",
        dest="cors_origins",
        required=True,
        help="an origin whose pages upload straight to the bucket (the API's, for /demo)",
    )
    args = parser.parse_args()
    stack = provision(args.endpoint_url, region=args.region, cors_origins=tuple(args.cors_origins))
    print(stack.queue_url)  # noqa: T201


if __name__ == "__main__":
    main()
