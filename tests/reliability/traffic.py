"""Clients that keep creating, uploading and polling while a test breaks things.

Each client behaves as a well-written app does: it retries a create or a GET that was refused
with 503, and retries an upload that S3 did not take, with the same ticket, until the ticket's
lifetime would run out. Every answer is recorded, so a test can say what a user saw.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.reliability.conftest import Deployment

# An answer slower than this is a hang, whatever its status.
MAX_ANSWER_S = 10.0
RETRY_PAUSE_S = 0.25
# Uploads go on being retried this long after the traffic stops (tickets live 300 s).
UPLOAD_RETRY_S = 60.0


@dataclass
class Traffic:
    statuses: Counter[int] = field(default_factory=Counter)
    slowest_s: float = 0.0
    # Answers that broke the contract: a 5xx other than a 503 problem, a body with a traceback.
    bad_answers: list[str] = field(default_factory=list)

    def record(self, response: httpx.Response, elapsed_s: float) -> None:
        self.statuses[response.status_code] += 1
        self.slowest_s = max(self.slowest_s, elapsed_s)
        body = response.text
        leaks = "Traceback" in body or 'File "' in body
        if leaks or (response.status_code >= 500 and not _is_unavailable_problem(response)):
            self.bad_answers.append(f"{response.status_code}: {body[:300]}")

    @property
    def server_errors_beyond_503(self) -> int:
        return (
            sum(count for status, count in self.statuses.items() if status >= 500)
            - (self.statuses[503])
        )


def _is_unavailable_problem(response: httpx.Response) -> bool:
    if response.status_code != 503:
        return False
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return False
    return bool(response.json().get("code") == "dependency_unavailable")


async def _call(
    traffic: Traffic, http: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> httpx.Response | None:
    started = time.monotonic()
    try:
        response = await http.request(method, url, **kwargs)
    except httpx.TransportError:
        traffic.statuses[0] += 1  # the API itself unreachable: never expected here
        return None
    traffic.record(response, time.monotonic() - started)
    return response


async def _upload(ticket: dict[str, Any], data: bytes, content_type: str) -> bool:
    """One try of the browser's form POST to S3."""
    async with httpx.AsyncClient(timeout=MAX_ANSWER_S) as s3:
        try:
            response = await s3.post(
                ticket["url"], data=ticket["fields"], files={"file": ("u", data, content_type)}
            )
        except httpx.TransportError:
            return False
    return response.status_code == 204


async def _one_client(
    deployment: Deployment, traffic: Traffic, data: bytes, content_type: str, stop: asyncio.Event
) -> None:
    body = {"filename": "load.png", "content_type": content_type, "size_bytes": len(data)}
    async with deployment.client(timeout_s=MAX_ANSWER_S * 3) as http:
        while not stop.is_set():
            created = await _call(traffic, http, "POST", "/v1/images", json=body)
            if created is None or created.status_code != 201:
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            image = created.json()
            deployment.uploaded[image["id"]] = False
            give_up_at = time.monotonic() + UPLOAD_RETRY_S
            while not await _upload(image["upload"], data, content_type):
                if time.monotonic() > give_up_at:
                    break
                await asyncio.sleep(RETRY_PAUSE_S)
            else:
                deployment.uploaded[image["id"]] = True
            await _call(traffic, http, "GET", f"/v1/images/{image['id']}")


async def run_traffic(
    deployment: Deployment,
    data: bytes,
    *,
    content_type: str = "image/png",
    clients: int = 4,
    stop: asyncio.Event,
) -> Traffic:
    """Run `clients` clients until `stop` is set (and their last uploads are through)."""
    traffic = Traffic()
    await asyncio.gather(
        *(_one_client(deployment, traffic, data, content_type, stop) for _ in range(clients))
    )
    return traffic


async def poll_readyz(deployment: Deployment, stop: asyncio.Event) -> Counter[int]:
    """What a load balancer sees while `stop` is unset, one probe every 0.2 s."""
    seen: Counter[int] = Counter()
    async with httpx.AsyncClient(base_url=deployment.api_url, timeout=MAX_ANSWER_S) as http:
        while not stop.is_set():
            try:
                seen[(await http.get("/readyz")).status_code] += 1
            except httpx.TransportError:
                seen[0] += 1
            await asyncio.sleep(0.2)
    return seen


async def upload_batch(deployment: Deployment, data: bytes, *, count: int) -> list[str]:
    """`count` images created and uploaded, one after another, in a healthy deployment."""
    body = {"filename": "batch.png", "content_type": "image/png", "size_bytes": len(data)}
    image_ids = []
    async with deployment.client() as http:
        for _ in range(count):
            created = await http.post("/v1/images", json=body)
            assert created.status_code == 201, created.text
            image = created.json()
            deployment.uploaded[image["id"]] = False
            assert await _upload(image["upload"], data, "image/png")
            deployment.uploaded[image["id"]] = True
            image_ids.append(image["id"])
    return image_ids
