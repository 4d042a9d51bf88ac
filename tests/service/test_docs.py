"""`/docs` and `/redoc` name only assets this API serves; the browser tests render them."""

from __future__ import annotations

import re

import httpx
import pytest


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_page_loads_assets_from_this_api_only(
    anonymous_client: httpx.AsyncClient, page: str
) -> None:
    response = await anonymous_client.get(page)

    assert response.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", response.text)
    urls += re.findall(r"""url: ?["']([^"']+)["']""", response.text)
    assert urls and all(url.startswith("/") for url in urls), urls
    for url in urls:
        asset = await anonymous_client.get(url)
        assert asset.status_code == 200, url
    assert "default-src 'self'" in response.headers["content-security-policy"]
