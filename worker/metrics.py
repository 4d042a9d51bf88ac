"""What the worker counts: Prometheus series for the metrics endpoint, and the same numbers for
the line the worker logs when it stops.

Each `Metrics` has a registry of its own (not the process-wide default), so two workers in one
process (the tests) never share or collide.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Callable
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

# What became of one received message:
#   done       its effect is durable (an image ready or failed for good); deleted
#   discarded  nothing to do (not ours, unknown or deleted image, already finished); deleted
#   retried    a transient failure; left to come back when its visibility runs out
#   gave_up    a transient failure on its last allowed delivery: the image is marked failed and
#              the queue moves the message to the dead-letter queue
#   released   cancelled at shutdown; made visible again at once, for another worker
MessageOutcome = Literal["done", "discarded", "retried", "gave_up", "released"]

# Seconds; from the event being read to its effect recorded (fetch, render, store, record).
PROCESSING_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages_received = Counter(
            "picforge_worker_messages_received",
            "Messages received (a redelivery counts again)",
            registry=self.registry,
        )
        self.messages = Counter(
            "picforge_worker_messages",
            "Messages received, by what became of them",
            ["outcome"],
            registry=self.registry,
        )
        self.images_processed = Counter(
            "picforge_worker_images_processed",
            "Images rendered and recorded ready",
            registry=self.registry,
        )
        self.images_failed = Counter(
            "picforge_worker_images_failed",
            "Images recorded failed, by error code",
            ["code"],
            registry=self.registry,
        )
        self.processing_seconds = Histogram(
            "picforge_worker_processing_seconds",
            "Time to process one image, by result",
            ["result"],
            buckets=PROCESSING_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "picforge_worker_messages_in_flight",
            "Messages being handled now",
            registry=self.registry,
        )
        self.render_processes_replaced = Counter(
            "picforge_worker_render_processes_replaced",
            "Render processes killed or dead and replaced, by why: cpu or memory (an image over "
            "its budget), crash (a codec crashed), cancelled (its job timed out), died (killed "
            "from outside)",
            ["reason"],
            registry=self.registry,
        )
        self.swept_total = Counter(
            "picforge_worker_swept",
            "Things swept for lingering: expired_images, multipart_uploads, idempotency_keys",
            ["kind"],
            registry=self.registry,
        )
        self.reconcile_fixes = Counter(
            "picforge_worker_reconcile_fixes",
            "Drift between S3 and the records that reconcile fixed, by kind (worker.reconcile)",
            ["kind"],
            registry=self.registry,
        )
        self.tally: Tally[str] = Tally()

    def received(self, count: int) -> None:
        self.messages_received.inc(count)
        self.tally["received"] += count

    def message(self, outcome: MessageOutcome) -> None:
        self.messages.labels(outcome).inc()
        self.tally[outcome] += 1

    def image_ready(self, seconds: float) -> None:
        self.images_processed.inc()
        self.processing_seconds.labels("ready").observe(seconds)
        self.tally["images_ready"] += 1

    def image_failed(self, code: str, seconds: float | None = None) -> None:
        """`seconds`: None when no processing was timed (the worker gave up on the image)."""
        self.images_failed.labels(code).inc()
        if seconds is not None:
            self.processing_seconds.labels("failed").observe(seconds)
        self.tally["images_failed"] += 1

    def render_process_replaced(self, reason: str) -> None:
        self.render_processes_replaced.labels(reason).inc()
        self.tally["render_processes_replaced"] += 1

    def swept(self, kind: str, count: int = 1) -> None:
        self.swept_total.labels(kind).inc(count)
        self.tally[f"swept_{kind}"] += count

    def reconciled(self, kind: str) -> None:
        self.reconcile_fixes.labels(kind).inc()
        self.tally["reconcile_fixes"] += 1

    def summary(self) -> str:
        """`name=count` for every count, in a stable order, zeros included."""
        names = (
            *("received", "done", "discarded", "retried", "gave_up", "released"),
            *("images_ready", "images_failed", "render_processes_replaced"),
        )
        return " ".join(f"{name}={self.tally[name]}" for name in names)

    def serve(self, host: str, port: int) -> tuple[int, Callable[[], None]]:
        """Serve `/metrics` on a thread; the port it listens on (port 0 picks one) and how to
        stop it."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        log.info("metrics on http://%s:%d/metrics", host, server.server_port)
        return server.server_port, stop
