"""What the queue holds, as the tests read it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.polling import eventually

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

VISIBLE = "ApproximateNumberOfMessages"
IN_FLIGHT = "ApproximateNumberOfMessagesNotVisible"  # received, not yet deleted


async def queue_counts(sqs: SQSClient, queue_url: str) -> tuple[int, int]:
    """(visible, in flight) messages of the queue."""
    response = await sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=[VISIBLE, IN_FLIGHT]
    )
    attributes = response["Attributes"]
    return int(attributes[VISIBLE]), int(attributes[IN_FLIGHT])


async def wait_until_queue_drained(
    sqs: SQSClient, queue_url: str, *, timeout_s: float = 60
) -> None:
    """Until the worker has deleted every message: each one handled, clean-up included."""

    async def drained() -> bool:
        return await queue_counts(sqs, queue_url) == (0, 0)

    await eventually(drained, timeout_s=timeout_s, what="the queue to drain")
