"""How errors leave the API: the exception handlers that send every error a request meets,
ours, a dependency's, the framework's or a bug, as the one `Problem` shape (service.errors)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.errors import (
    FOREIGN_ERRORS,
    PROBLEM_JSON,
    DependencyUnavailable,
    PicforgeError,
    Problem,
    TooManyRequests,
    ValidationIssue,
    domain_error,
)

log = logging.getLogger(__name__)


def problem(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    errors: list[ValidationIssue] | None = None,
    limit: str | None = None,
) -> JSONResponse:
    body = Problem(
        type=f"urn:picforge:error:{code}",
        title=title,
        status=status,
        detail=detail,
        code=code,
        errors=errors,
        limit=limit,
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


async def handle_picforge_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PicforgeError)
    if exc.status_code >= 500:
        log.error("request failed: %s %s: %s", request.method, request.url.path, exc.detail)
    return problem(
        status=exc.status_code,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        headers=exc.response_headers(),
        limit=exc.limit if isinstance(exc, TooManyRequests) else None,
    )


def validation_problem(exc: RequestValidationError) -> JSONResponse:
    # Only where and why: pydantic's `input` and `ctx` may echo values back, `url` is noise.
    errors = [
        ValidationIssue(location=list(error["loc"]), message=error["msg"], type=error["type"])
        for error in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(map(str, e.location))}: {e.message}" for e in errors)
    return problem(
        status=422, code="validation_error", title="Invalid request", detail=detail, errors=errors
    )


HTTP_ERROR_CODES = {
    # A body that never arrived whole.
    400: ("malformed_request", "Malformed request"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
}


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, title = HTTP_ERROR_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return problem(
        status=exc.status_code,
        code=code,
        title=title,
        detail=str(exc.detail),
        headers=headers,
    )


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path: Starlette's own `Allow` names only the
    methods of the first route it tried, and `GET` and `POST /v1/images` are two routes."""
    return [
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]


async def handle_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error: %s %s", request.method, request.url.path)
    return problem(
        status=500,
        code=PicforgeError.code,
        title=PicforgeError.title,
        detail="Something went wrong on our side.",
    )


async def handle_foreign_error(request: Request, exc: Exception) -> JSONResponse:
    mapped = domain_error(exc)
    if mapped is None:
        return await handle_unexpected_error(request, exc)
    if isinstance(mapped, DependencyUnavailable):
        log.warning("dependency unreachable: %s %s: %r", request.method, request.url.path, exc)
    return await handle_picforge_error(request, mapped)


def install_error_handlers(
    app: FastAPI, *, before_validation_error: Callable[[Request], Awaitable[None]] | None = None
) -> None:
    """`before_validation_error` may refuse a malformed request otherwise first, by raising
    (`service.deps.refuse_inactive_key`: a key that is not active hears only that)."""

    async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        if before_validation_error is not None:
            try:
                await before_validation_error(request)
            except Exception as refusal:
                mapped = domain_error(refusal)
                if mapped is None:
                    raise
                return await handle_picforge_error(request, mapped)
        return validation_problem(exc)

    app.add_exception_handler(PicforgeError, handle_picforge_error)
    for error in FOREIGN_ERRORS:
        app.add_exception_handler(error, handle_foreign_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)
    app.add_exception_handler(Exception, handle_unexpected_error)
