"""A small client of picforge's public API, for the `picforge upload` and `images` commands.

It speaks only what any client may: the `/v1` routes with a bearer key, and `/openapi.json`,
whose `ImageCreate` schema states this deployment's accepted types and size limit.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any

import httpx

from service.content_types import ACCEPTED_CONTENT_TYPES
from service.keys import InvalidKey, parse_key

DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024 * 1024
# The longest `Retry-After` of a rate limit the client waits out by itself before it retries.
MAX_RATE_LIMIT_WAIT_S = 60
Record = dict[str, Any]


class ClientError(Exception):
    """What went wrong, for one line on the terminal (`code: detail` for API problems)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class UploadLimits:
    content_types: frozenset[str]
    max_bytes: int


def api_key_from_environment() -> str:
    key = os.environ.get("PICFORGE_API_KEY", "").strip()
    if not key:
        raise ClientError("PICFORGE_API_KEY: set it to an API key (`picforge keys create OWNER`)")
    try:
        parse_key(key)
    except InvalidKey as exc:
        raise ClientError(f"PICFORGE_API_KEY: {exc}") from None
    return key


def api_url_from(option: str | None) -> str:
    return (option or os.environ.get("PICFORGE_API_URL") or DEFAULT_API_URL).rstrip("/")


def problem_error(response: httpx.Response) -> ClientError:
    try:
        problem = response.json()
        code, detail = str(problem["code"]), str(problem["detail"])
    except (ValueError, KeyError, TypeError):
        return ClientError(f"the API answered HTTP {response.status_code}")
    return ClientError(f"{code}: {detail}", code=code)


def rate_limit_wait_s(response: httpx.Response) -> int | None:
    """Seconds to wait before retrying a request a rate limit refused; None for any other
    answer (a quota's refusal has no `Retry-After`: waiting would not help)."""
    retry_after = response.headers.get("Retry-After", "")
    if response.status_code != 429 or not retry_after.isdigit():
        return None
    seconds = int(retry_after)
    return seconds if seconds <= MAX_RATE_LIMIT_WAIT_S else None


class ApiClient:
    def __init__(self, api_url: str, key: str, *, timeout_s: float = 30) -> None:
        # httpx logs every request at INFO; a terminal user wants the results, not those.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self.api_url = api_url
        self.http = httpx.AsyncClient(
            base_url=api_url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout_s
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a rate limit's refusal (which changed nothing) is waited out and tried
        again, so `picforge upload` of a large directory goes at the owner's rate."""
        while True:
            try:
                response = await self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise ClientError(
                    f"cannot reach the API at {self.api_url} ({type(exc).__name__}); "
                    "expected --api-url or PICFORGE_API_URL to name a running picforge"
                ) from None
            wait_s = rate_limit_wait_s(response)
            if wait_s is None:
                break
            await asyncio.sleep(wait_s)
        if response.is_error:
            raise problem_error(response)
        return response

    async def upload_limits(self) -> UploadLimits:
        """This deployment's accepted types and size limit, as its document states them."""
        document = (await self.request("GET", "/openapi.json")).json()
        try:
            properties = document["components"]["schemas"]["ImageCreate"]["properties"]
            return UploadLimits(
                content_types=frozenset(properties["content_type"]["enum"]),
                max_bytes=int(properties["size_bytes"]["maximum"]),
            )
        except (KeyError, TypeError, ValueError):
            return UploadLimits(frozenset(ACCEPTED_CONTENT_TYPES), DEFAULT_MAX_UPLOAD_BYTES)

    async def create_image(self, *, filename: str, content_type: str, size_bytes: int) -> Record:
        body = {
            "filename": filename,
            "content_type": content_type,
            "size_bytes": size_bytes,
            "upload_method": "put",
        }
        created: Record = (await self.request("POST", "/v1/images", json=body)).json()
        return created

    async def get_image(self, image_id: str) -> Record:
        record: Record = (await self.request("GET", f"/v1/images/{image_id}")).json()
        return record

    async def list_images(self, *, status: str | None, limit: int, cursor: str | None) -> Record:
        params: dict[str, str | int] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        page: Record = (await self.request("GET", "/v1/images", params=params)).json()
        return page

    async def delete_image(self, image_id: str) -> None:
        await self.request("DELETE", f"/v1/images/{image_id}")
