"""The receive → handle → delete loop, and the drain.

Messages are picked only while there is room for them (at most `concurrency` in flight, up to
10 a receive, long-polling). What becomes of each is `worker.delivery`'s business. On stop,
nothing new is picked and the messages in flight get `drain_s` to finish; the ones still
unfinished then are cancelled and made visible again at once, for another worker to take.
Nothing in flight is lost: a message is deleted only after its effect is durable. While a
dependency is down (`worker.outages`), nothing is received.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from worker.delivery import Delivery
from worker.messages import MAX_BATCH, Message, MessageQueue
from worker.metrics import Metrics

log = logging.getLogger(__name__)

RECEIVE_RETRY_S = 1.0
POLL_MARGIN_S = 0.5


@dataclass(frozen=True)
class ConsumerOptions:
    concurrency: int
    wait_s: int
    drain_s: float


class Consumer:
    def __init__(
        self,
        queue: MessageQueue,
        delivery: Delivery,
        metrics: Metrics,
        options: ConsumerOptions,
    ) -> None:
        self.queue = queue
        self.delivery = delivery
        self.metrics = metrics
        self.options = options
        self.in_flight: dict[asyncio.Task[None], Message] = {}
        # When a receive abandoned at stop is over on SQS's side too (see `release`).
        self.abandoned_poll_ends = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        stopping = asyncio.create_task(stop.wait())
        receiving: asyncio.Task[list[Message]] | None = None
        try:
            while not stop.is_set():
                room = self.options.concurrency - len(self.in_flight)
                if not self.delivery.dependencies.up:
                    back = asyncio.create_task(self.delivery.dependencies.wait_until_up())
                    await asyncio.wait({stopping, back}, return_when="FIRST_COMPLETED")
                    back.cancel()
                    continue
                if room == 0:
                    await asyncio.wait({stopping, *self.in_flight}, return_when="FIRST_COMPLETED")
                    continue
                receiving = asyncio.create_task(self.receive(min(MAX_BATCH, room)))
                await asyncio.wait({stopping, receiving}, return_when="FIRST_COMPLETED")
                if not receiving.done():
                    break
                for message in receiving.result():
                    self.start(message)
        finally:
            stopping.cancel()
            if receiving is not None and not receiving.done():
                # A message SQS hands to the abandoned poll comes back after its timeout.
                receiving.cancel()
                loop = asyncio.get_running_loop()
                self.abandoned_poll_ends = loop.time() + self.options.wait_s + POLL_MARGIN_S
            await self.drain()
            log.info("worker stopped: %s", self.metrics.summary())

    async def receive(self, max_messages: int) -> list[Message]:
        try:
            messages = await self.queue.receive(max_messages, wait_s=self.options.wait_s)
        except Exception:
            log.exception("receive failed; retrying in %s s", RECEIVE_RETRY_S)
            await asyncio.sleep(RECEIVE_RETRY_S)
            return []
        self.metrics.received(len(messages))
        return messages

    def start(self, message: Message) -> None:
        task = asyncio.create_task(self.delivery.handle(message), name=f"message-{message.id}")
        self.in_flight[task] = message
        self.metrics.in_flight.set(len(self.in_flight))
        task.add_done_callback(self.finished)

    def finished(self, task: asyncio.Task[None]) -> None:
        message = self.in_flight.pop(task)
        self.metrics.in_flight.set(len(self.in_flight))
        if not task.cancelled() and (error := task.exception()) is not None:
            # Delivery handles every failure of a job; this is a bug in the worker itself.
            log.error("message_id=%s: handler crashed", message.id, exc_info=error)

    async def drain(self) -> None:
        if not self.in_flight:
            return
        log.info("draining %d messages for up to %s s", len(self.in_flight), self.options.drain_s)
        _, unfinished = await asyncio.wait(set(self.in_flight), timeout=self.options.drain_s)
        released = [self.in_flight[task] for task in unfinished]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        await self.release(released)

    async def release(self, messages: list[Message]) -> None:
        """Make unfinished messages visible again at once, for another worker to take. Not
        while the receive abandoned at stop may still be waiting on SQS's side: it would take
        them back, for a whole visibility timeout, with no one left to read its answer."""
        if not messages:
            return
        wait_s = self.abandoned_poll_ends - asyncio.get_running_loop().time()
        if wait_s > 0:
            log.info("releasing %d messages in %.1f s, after the last poll", len(messages), wait_s)
            await asyncio.sleep(wait_s)
        for message in messages:
            log.warning("message_id=%s released unfinished: visible again now", message.id)
            await self.queue.set_visibility(message, 0)
            self.metrics.message("released")
