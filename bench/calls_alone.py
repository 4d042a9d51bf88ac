"""The S3 and SQS calls the worker makes for one image, made alone: the floor of its own CPU.

For each image the worker receives its message, lists the original's versions, gets the
original, puts each rendition and deletes the message. Here the same calls go through clients
built by the worker's own code (service/aws.py, worker/messages.py), against the same emulator,
with nothing around them; so the worker's CPU per image over this figure is what the worker
adds to its calls: the database writes, the hand-off to a render child, delivery and the event
loop.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from contextlib import AsyncExitStack

from service.aws import open_s3_client, open_sqs_client
from service.config import AwsSettings
from service.storage import erase_versions
from worker.handlers import CACHE_CONTROL
from worker.messages import MessageQueue
from worker.renditions import render

# Outside `originals/`, so the worker's queue hears nothing of these objects.
PREFIX = "bench-calls/"
WARM_UP_ROUNDS = 5
VISIBILITY_TIMEOUT_S = 60


async def calls_alone_cpu_ms(
    worker_environment: dict[str, str], original: bytes, rounds: int
) -> float:
    """CPU ms of this process per image for the worker's S3 and SQS calls alone: not the
    setup each round needs (putting the original, sending its message, clearing up)."""
    # The worker's credentials for the emulator, as its clients find them: in the environment.
    os.environ.update({k: v for k, v in worker_environment.items() if k.startswith("AWS_")})
    settings = AwsSettings(
        aws_region=worker_environment["PICFORGE_AWS_REGION"],
        aws_endpoint_url=worker_environment["PICFORGE_AWS_ENDPOINT_URL"],
        uploads_bucket=worker_environment["PICFORGE_UPLOADS_BUCKET"],
        renditions_bucket=worker_environment["PICFORGE_RENDITIONS_BUCKET"],
    )
    renditions = render(original).renditions
    async with AsyncExitStack() as stack:
        s3 = await open_s3_client(stack, settings)
        sqs = await open_sqs_client(stack, settings, long_polls=True)
        queue_url = (await sqs.create_queue(QueueName=f"bench-calls-{uuid.uuid4().hex[:8]}"))[
            "QueueUrl"
        ]
        queue = MessageQueue(sqs, queue_url, visibility_timeout_s=VISIBILITY_TIMEOUT_S)
        spent = 0.0
        try:
            for round_number in range(WARM_UP_ROUNDS + rounds):
                prefix = f"{PREFIX}{uuid.uuid4()}/"
                key = f"{prefix}original"
                await s3.put_object(Bucket=settings.uploads_bucket, Key=key, Body=original)
                await sqs.send_message(QueueUrl=queue_url, MessageBody=_event_like(settings, key))
                started = time.process_time()
                (message,) = await queue.receive(10, wait_s=20)
                listing = await s3.list_object_versions(Bucket=settings.uploads_bucket, Prefix=key)
                version_id = listing["Versions"][-1]["VersionId"]
                got = await s3.get_object(
                    Bucket=settings.uploads_bucket, Key=key, VersionId=version_id
                )
                async with got["Body"] as body:
                    await body.read()
                for rendition in renditions:
                    await s3.put_object(
                        Bucket=settings.renditions_bucket,
                        Key=f"{prefix}{rendition.name}.webp",
                        Body=rendition.data,
                        ContentType=rendition.content_type,
                        CacheControl=CACHE_CONTROL,
                    )
                await queue.delete(message)
                if round_number >= WARM_UP_ROUNDS:
                    spent += time.process_time() - started
                for bucket in (settings.uploads_bucket, settings.renditions_bucket):
                    await erase_versions(s3, bucket=bucket, prefix=prefix)
        finally:
            await sqs.delete_queue(QueueUrl=queue_url)
    return spent / rounds * 1000


def _event_like(settings: AwsSettings, key: str) -> str:
    """A body the size and shape of an S3 ObjectCreated notification."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": settings.aws_region,
        "eventName": "ObjectCreated:Post",
        "s3": {
            "bucket": {"name": settings.uploads_bucket},
            "object": {"key": key, "size": 1, "versionId": uuid.uuid4().hex, "sequencer": "0"},
        },
    }
    return json.dumps({"Records": [record]})
