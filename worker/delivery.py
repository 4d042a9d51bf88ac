"""One received message, from its body to its deletion (or not).

- A message that is not an S3 notification or a picforge job is logged and deleted.
- While its events are handled, the message's visibility is renewed (a heartbeat), so a job
  longer than the visibility timeout is never handed to a second worker.
- It is deleted only once every event's effect is durable (recorded in PostgreSQL).
- A transient failure leaves it for redelivery. On the last delivery the queue allows before it
  dead-letters the message, the worker records `processing_failed` on the image first (and
  should it die on that delivery, `worker.abandoned` records it later).
- A failure for want of the database closes the gate (worker.database_gate) and spends no
  delivery for good: on the last one, the message is sent again as a new message.
- Cancelled (the drain ran out of time): the consumer makes it visible again at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

from service.db import is_database_unavailable
from worker.database_gate import DatabaseGate
from worker.events import Event, UnrecognizedMessage, parse_message_body
from worker.handlers import Outcome, RenderContext, give_up, handle_event, image_id_of
from worker.messages import Message, MessageQueue
from worker.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryOptions:
    job_timeout_s: float
    # Deliveries the queue allows before it dead-letters a message; None: no dead-letter queue.
    max_receive_count: int | None


class Delivery:
    def __init__(
        self,
        queue: MessageQueue,
        context: RenderContext,
        metrics: Metrics,
        options: DeliveryOptions,
        gate: DatabaseGate | None = None,
    ) -> None:
        self.queue = queue
        self.context = context
        self.metrics = metrics
        self.options = options
        self.gate = gate

    async def handle(self, message: Message) -> None:
        try:
            events = parse_message_body(message.body)
        except UnrecognizedMessage as exc:
            log.warning("message_id=%s discarded: %s", message.id, exc)
            await self.queue.delete(message)
            self.metrics.message("discarded")
            return
        if not events:
            log.info("message_id=%s discarded: announces no new object", message.id)
        async with self.heartbeat(message):
            try:
                outcomes = [await self.handle_event(message, event) for event in events]
            except Exception as exc:
                await self.after_transient_failure(message, events, exc)
                return
        await self.queue.delete(message)
        worked = any(outcome.result != "skipped" for outcome in outcomes)
        self.metrics.message("done" if worked else "discarded")

    async def handle_event(self, message: Message, event: Event) -> Outcome:
        started = time.perf_counter()
        async with asyncio.timeout(self.options.job_timeout_s):
            outcome = await handle_event(self.context, event)
        elapsed = time.perf_counter() - started
        if outcome.result == "ready":
            self.metrics.image_ready(elapsed)
        elif outcome.result == "failed":
            self.metrics.image_failed(outcome.code or "unknown", elapsed)
        log.info(
            "message_id=%s image_id=%s %s: %s (%.3f s)",
            message.id,
            outcome.image_id,
            outcome.result if outcome.code is None else f"{outcome.result} {outcome.code}",
            outcome.detail,
            elapsed,
        )
        return outcome

    def is_last_delivery(self, message: Message) -> bool:
        limit = self.options.max_receive_count
        return limit is not None and message.receive_count >= limit

    async def after_transient_failure(
        self, message: Message, events: list[Event], error: Exception
    ) -> None:
        reason = describe(error)
        limit = self.options.max_receive_count
        where = (
            f"message_id={message.id} image_ids={','.join(map(str, image_ids(events)))} "
            f"delivery {message.receive_count} of {limit or 'unlimited'}"
        )
        if self.gate is not None and is_database_unavailable(error) and not await self.gate.probe():
            self.gate.close()
            if self.is_last_delivery(message):
                log.warning("%s: the database is unavailable; sent again: %s", where, reason)
                await self.queue.requeue(message)
            else:
                log.warning("%s: the database is unavailable; left for redelivery", where)
            self.metrics.message("retried")
            return
        if not self.is_last_delivery(message):
            log.warning("%s: left for redelivery: %s", where, reason, exc_info=error)
            self.metrics.message("retried")
            return
        log.error("%s: gave up, the queue dead-letters it: %s", where, reason, exc_info=error)
        reason = f"gave up after {message.receive_count} deliveries: {reason}"
        for event in events:
            try:
                outcome = await give_up(self.context, event, reason)
            except Exception:
                log.exception("message_id=%s could not record the failure", message.id)
                continue
            if outcome is not None and outcome.result == "failed":
                self.metrics.image_failed(outcome.code or "unknown")
        self.metrics.message("gave_up")
        # Visible now: the next receive moves it to the dead-letter queue.
        await self.queue.set_visibility(message, 0)

    @asynccontextmanager
    async def heartbeat(self, message: Message) -> AsyncIterator[None]:
        """Keep the message hidden while the block runs: renew its visibility timeout every
        third of it."""
        visibility_s = self.queue.visibility_timeout_s

        async def renew() -> None:
            while True:
                await asyncio.sleep(visibility_s / 3)
                await self.queue.set_visibility(message, visibility_s)

        renewing = asyncio.create_task(renew(), name=f"heartbeat-{message.id}")
        try:
            yield
        finally:
            renewing.cancel()
            with suppress(asyncio.CancelledError):
                await renewing


def image_ids(events: list[Event]) -> list[uuid.UUID]:
    return [image_id for event in events if (image_id := image_id_of(event)) is not None]


def describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "the job timed out"
    return f"{type(error).__name__}: {error}".rstrip(": ")
