"""`/docs` and `/redoc` in Chromium with every origin but the API's blocked."""

from __future__ import annotations

from pathlib import Path

from tests.browser.conftest import operation_count, run_script
from tests.conftest import LiveApi


async def test_docs_render_every_operation_offline_and_try_a_request(
    live_api: LiveApi, chromium: str, artifacts: Path
) -> None:
    seen = await run_script(
        "docs.mjs",
        {
            "apiUrl": live_api.url,
            "apiKey": live_api.key,
            "executablePath": chromium,
            "artifacts": str(artifacts),
        },
    )

    operations = operation_count(live_api.url)
    assert seen["blocked"] == [], "the docs reached for the internet"
    assert seen["pageErrors"] == []
    # Only ReDoc's decorative footer logo is refused, by the page's own policy.
    assert all("cdn.redoc.ly/redoc/logo-mini.svg" in text for text in seen["refusedByPolicy"])
    assert seen["swaggerOperations"] == operations
    assert seen["redocOperations"] == operations
    assert seen["swaggerTitle"].startswith("picforge")
    # Authorized with the key, "Try it out" on listImages reached the API and got its list.
    assert seen["tryItOutAuthorization"] == f"Bearer {live_api.key}"
    assert seen["tryItOutStatus"] == "200"
    assert (artifacts / "docs-swagger.png").stat().st_size > 0
    assert (artifacts / "docs-redoc.png").stat().st_size > 0
