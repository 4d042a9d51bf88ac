"""The worker's side of its SQS queue: receive, delete, and move a message's visibility.

Every message is received with an explicit visibility timeout, renewed while its image is worked
on (`Delivery.heartbeat` in worker.delivery), so a crashed worker's message comes back within
one timeout, while a long render is never handed to a second worker.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

MAX_BATCH = 10  # SQS's ceiling for one receive


@dataclass(frozen=True)
class Message:
    id: str
    receipt_handle: str
    body: str
    receive_count: int  # 1 on the first delivery

    @classmethod
    def from_sqs(cls, message: MessageTypeDef) -> Message:
        attributes = message.get("Attributes", {})
        return cls(
            id=message.get("MessageId", "?"),
            receipt_handle=message["ReceiptHandle"],
            body=message.get("Body", ""),
            receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
        )


class MessageQueue:
    def __init__(self, sqs: SQSClient, url: str, *, visibility_timeout_s: int) -> None:
        self.sqs = sqs
        self.url = url
        self.visibility_timeout_s = visibility_timeout_s

    async def receive(self, max_messages: int, *, wait_s: int) -> list[Message]:
        response = await self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=min(max_messages, MAX_BATCH),
            WaitTimeSeconds=wait_s,
            VisibilityTimeout=self.visibility_timeout_s,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [Message.from_sqs(message) for message in response.get("Messages", [])]

    async def delete(self, message: Message) -> None:
        try:
            await self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt_handle)
        except Exception:
            # The message comes back and is handled again, harmlessly: handlers are idempotent.
            log.exception("delete failed: message_id=%s", message.id)

    async def requeue(self, message: Message) -> None:
        """Send `message` again as a new one (its deliveries counted from zero), then delete
        it. Should the delete fail, it comes back and is handled twice, harmlessly."""
        await self.sqs.send_message(QueueUrl=self.url, MessageBody=message.body)
        await self.delete(message)

    async def set_visibility(self, message: Message, seconds: int) -> None:
        """Hide the message for `seconds` from now (0: visible again at once)."""
        try:
            await self.sqs.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=seconds
            )
        except Exception:
            # Too late (it was redelivered) or SQS is unreachable: it comes back on its own.
            log.warning(
                "visibility not changed to %d s: message_id=%s", seconds, message.id, exc_info=True
            )

    async def read_max_receive_count(self) -> int | None:
        """The deliveries the queue allows before it dead-letters a message; None if it has
        no redrive policy."""
        response = await self.sqs.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["RedrivePolicy"]
        )
        policy = response.get("Attributes", {}).get("RedrivePolicy")
        if not policy:
            return None
        return int(json.loads(policy)["maxReceiveCount"])
