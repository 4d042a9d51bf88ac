"""`/demo`: a plain page that uploads images the way a browser app would, straight to S3.

On in `make dev`, off unless `PICFORGE_DEMO_ENABLED` is set: when off, every demo path is a
plain 404, indistinguishable from a route that does not exist. The page is static HTML, CSS
and a little JavaScript; it talks to the public API with a key the reader pastes, or the dev
key the operator chose to offer (`PICFORGE_DEMO_API_KEY`, for a local stack only).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, JSONResponse

from service.config import ApiSettings

STATIC = Path(__file__).resolve().parents[1] / "static"
ASSETS = {
    "demo.js": "text/javascript; charset=utf-8",
    "demo.css": "text/css; charset=utf-8",
}
# Scripts and styles from this origin only, so a filename can never become a script; images and
# uploads go to S3 (or a CDN), whose origin depends on the deployment.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: http: "
    "https:; connect-src 'self' http: https:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(prefix="/demo", include_in_schema=False)


def require_demo(request: Request) -> ApiSettings:
    settings: ApiSettings | None = request.app.state.settings
    if settings is None or not settings.demo_enabled:
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    return settings


@router.get("")
async def demo_page(request: Request) -> FileResponse:
    require_demo(request)
    return FileResponse(
        STATIC / "demo.html", media_type="text/html; charset=utf-8", headers=HEADERS
    )


@router.get("/config.json")
async def demo_config(request: Request) -> JSONResponse:
    settings = require_demo(request)
    return JSONResponse({"dev_api_key": settings.demo_api_key}, headers=HEADERS)


@router.get("/{asset}")
async def demo_asset(request: Request, asset: str) -> FileResponse:
    require_demo(request)
    if asset not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    return FileResponse(STATIC / asset, media_type=ASSETS[asset], headers=HEADERS)
