"""A cap on request bodies, refused as a 413 problem before the body is held in memory.

Every route but one takes a small JSON document, and is capped at `MAX_BODY_BYTES`. The
exception is a multipart upload's `complete`, which lists every part: it may take the part list
of the largest upload the deployment allows (`service.multipart.complete_body_bytes`), so its
cap grows with `PICFORGE_MAX_UPLOAD_BYTES` and no further. A declared `Content-Length` over the
cap is refused before a byte is read, and a streamed (chunked) body as soon as it passes the
cap. Starlette's own limiter answers in plain text; this one raises an `HTTPException`, which
the app's handler turns into the one error shape.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import ApiSettings
from service.multipart import complete_body_bytes

# Far more than any JSON body the API takes, and little enough to hold for every request at once.
MAX_BODY_BYTES = 16 * 1024
# `service.routes.multipart`'s complete route.
COMPLETE_PATH = re.compile(r"/v1/images/[^/]+/multipart/[^/]+/complete")


def too_large(max_bytes: int) -> HTTPException:
    return HTTPException(413, f"the body is over {max_bytes} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = MAX_BODY_BYTES
        if COMPLETE_PATH.fullmatch(scope["path"]):
            # The settings as the app's lifespan loaded them.
            settings: ApiSettings = scope["app"].state.settings
            max_bytes = max(MAX_BODY_BYTES, complete_body_bytes(settings))
        declared = Headers(scope=scope).get("content-length", "")
        over = declared.isdigit() and int(declared) > max_bytes
        received = 0

        async def receive_capped() -> Message:
            nonlocal received
            if over:
                raise too_large(max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise too_large(max_bytes)
            return message

        await self.app(scope, receive_capped, send)
