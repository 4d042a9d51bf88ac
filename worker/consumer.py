"""The receive → handle → delete loop.

Messages are picked only while there is room for them (at most `concurrency` in flight), and a
message is deleted only after its effect is durable. A transient failure leaves the message to
come back after its visibility timeout; the queue's redrive policy moves a message that keeps
failing to the dead-letter queue. On stop, nothing new is picked and the images in flight get
`drain_s` to finish; whatever is cancelled then simply becomes visible again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from worker.events import NotAnS3Event, parse_message_body
from worker.handlers import RenderContext, handle_object_created

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

MAX_BATCH = 10  # SQS's ceiling for one receive


@dataclass(frozen=True)
class ConsumerOptions:
    queue_url: str
    concurrency: int
    wait_s: int
    job_timeout_s: int
    drain_s: float


class Consumer:
    def __init__(self, sqs: SQSClient, context: RenderContext, options: ConsumerOptions) -> None:
        self.sqs = sqs
        self.context = context
        self.options = options
        self.in_flight: set[asyncio.Task[None]] = set()
        self.handled = 0
        self.left_for_redelivery = 0

    async def run(self, stop: asyncio.Event) -> None:
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                room = self.options.concurrency - len(self.in_flight)
                if room == 0:
                    await asyncio.wait({stopping, *self.in_flight}, return_when="FIRST_COMPLETED")
                    continue
                receiving = asyncio.create_task(self.receive(min(MAX_BATCH, room)))
                await asyncio.wait({stopping, receiving}, return_when="FIRST_COMPLETED")
                if not receiving.done():
                    # A message SQS handed to the cancelled poll reappears after its timeout.
                    receiving.cancel()
                    break
                for message in receiving.result():
                    task = asyncio.create_task(self.handle(message))
                    self.in_flight.add(task)
                    task.add_done_callback(self.in_flight.discard)
        finally:
            stopping.cancel()
            await self.drain()
            log.info(
                "worker stopped: handled=%d left_for_redelivery=%d",
                self.handled,
                self.left_for_redelivery,
            )

    async def drain(self) -> None:
        if not self.in_flight:
            return
        log.info("draining %d images for up to %s s", len(self.in_flight), self.options.drain_s)
        _, unfinished = await asyncio.wait(self.in_flight, timeout=self.options.drain_s)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)

    async def receive(self, max_messages: int) -> list[MessageTypeDef]:
        try:
            response = await self.sqs.receive_message(
                QueueUrl=self.options.queue_url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=self.options.wait_s,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        except Exception:
            log.exception("receive failed; retrying shortly")
            await asyncio.sleep(1)
            return []
        return response.get("Messages", [])

    async def handle(self, message: MessageTypeDef) -> None:
        message_id = message.get("MessageId", "?")
        started = time.perf_counter()
        try:
            events = parse_message_body(message.get("Body", ""))
        except NotAnS3Event as exc:
            log.warning("discarding message_id=%s: not an S3 event: %s", message_id, exc)
            await self.delete(message)
            return
        try:
            for event in events:
                outcome = await asyncio.wait_for(
                    handle_object_created(self.context, event), self.options.job_timeout_s
                )
                log.info(
                    "message_id=%s key=%s %s (%.3f s)",
                    message_id,
                    event.key,
                    outcome,
                    time.perf_counter() - started,
                )
        except asyncio.CancelledError:
            self.left_for_redelivery += 1
            raise
        except Exception:
            self.left_for_redelivery += 1
            log.exception("message_id=%s left for redelivery", message_id)
            return
        await self.delete(message)
        self.handled += 1

    async def delete(self, message: MessageTypeDef) -> None:
        try:
            await self.sqs.delete_message(
                QueueUrl=self.options.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        except Exception:
            # The message comes back and is handled again, harmlessly: handlers are idempotent.
            log.exception("delete failed for message_id=%s", message.get("MessageId"))
