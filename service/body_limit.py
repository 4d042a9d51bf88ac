"""A cap on request bodies, refused as a 413 problem before the body is held in memory.

No route takes more than a small JSON document, so every body is capped alike: a declared
`Content-Length` over the cap is refused before a byte is read, and a streamed (chunked) body
as soon as it passes the cap. Starlette's own limiter answers in plain text; this one raises
an `HTTPException`, which the app's handler turns into the one error shape.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Far more than any JSON body the API takes, and little enough to hold for every request at once.
MAX_BODY_BYTES = 16 * 1024


def too_large() -> HTTPException:
    return HTTPException(413, f"the body is over {MAX_BODY_BYTES} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        over = declared.isdigit() and int(declared) > self.max_bytes
        received = 0

        async def receive_capped() -> Message:
            nonlocal received
            if over:
                raise too_large()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise too_large()
            return message

        await self.app(scope, receive_capped, send)
