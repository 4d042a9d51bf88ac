"""Domain errors, and the one error shape clients see.

    PicforgeError                    500 internal_error
    ├── ImageNotFound                404 image_not_found
    ├── UnsupportedContentType       422 unsupported_content_type
    ├── FileTooLarge                 422 file_too_large
    ├── RequestValidationFailed      422 validation_error
    └── DependencyUnavailable        503 dependency_unavailable

Every error reaches the client as RFC 9457 `application/problem+json` with a stable `code`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class PicforgeError(Exception):
    status_code = 500
    code = "internal_error"
    title = "Internal error"

    def __init__(self, detail: str = "Something went wrong on our side.") -> None:
        super().__init__(detail)
        self.detail = detail


class ImageNotFound(PicforgeError):
    status_code = 404
    code = "image_not_found"
    title = "Image not found"


class UnsupportedContentType(PicforgeError):
    status_code = 422
    code = "unsupported_content_type"
    title = "Unsupported content type"


class FileTooLarge(PicforgeError):
    status_code = 422
    code = "file_too_large"
    title = "File too large"


class DependencyUnavailable(PicforgeError):
    status_code = 503
    code = "dependency_unavailable"
    title = "Dependency unavailable"


def problem(*, status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": f"urn:picforge:error:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


async def handle_picforge_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PicforgeError)
    if exc.status_code >= 500:
        log.error("request failed: %s %s: %s", request.method, request.url.path, exc.detail)
    return problem(status=exc.status_code, code=exc.code, title=exc.title, detail=exc.detail)


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"location": list(error["loc"]), "message": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(map(str, e['location']))}: {e['message']}" for e in errors)
    return problem(
        status=422,
        code="validation_error",
        title="Invalid request",
        detail=detail,
        errors=errors,
    )


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return problem(status=exc.status_code, code=code, title=str(exc.detail), detail=str(exc.detail))


async def handle_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error: %s %s", request.method, request.url.path)
    return problem(
        status=500,
        code=PicforgeError.code,
        title=PicforgeError.title,
        detail="Something went wrong on our side.",
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PicforgeError, handle_picforge_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)
    app.add_exception_handler(Exception, handle_unexpected_error)
