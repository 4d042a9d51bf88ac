"""`/demo` in Chromium: two good images and one bad one, picked at once, end as two thumbnails
and one failure code; on a desktop and on a phone-sized screen."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.browser.conftest import run_script
from tests.conftest import TESTDATA, LiveApi

pytestmark = pytest.mark.usefixtures("worker")

GOOD = [TESTDATA / "good" / "hopper.jpg", TESTDATA / "good" / "transparent.png"]
BAD = TESTDATA / "bad" / "truncated_jpeg.jpg"
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.mark.parametrize("screen", sorted(VIEWPORTS))
async def test_demo_uploads_two_good_images_and_reports_a_bad_one(
    live_api: LiveApi, chromium: str, artifacts: Path, screen: str
) -> None:
    seen = await run_script(
        "demo.mjs",
        {
            "apiUrl": live_api.url,
            "s3Url": live_api.s3_url,
            "files": [str(path) for path in [*GOOD, BAD]],
            "executablePath": chromium,
            "artifacts": str(artifacts),
            "viewport": VIEWPORTS[screen],
            "name": screen,
        },
    )

    assert seen["blocked"] == []
    assert seen["pageErrors"] == []
    cards = {card["name"].split(" ")[0]: card for card in seen["cards"]}
    for path in GOOD:
        card = cards[path.name]
        assert card["state"] == "ready", card
        assert card["thumbnailWidth"] > 0
        assert card["text"].startswith("ready: ")
        assert "placeholder #" in card["text"]
        assert len(card["renditions"]) == 4
        assert any(r.startswith("thumb") and "webp" in r for r in card["renditions"]), card
    bad = cards[BAD.name]
    assert bad["state"] == "failed"
    assert bad["code"] == "corrupt_image", bad
    assert bad["renditions"] == []
    assert any(text.endswith("100%") for text in seen["progress"]), seen["progress"]
    assert not seen["overflowsHorizontally"], "the page scrolls sideways"
    assert (artifacts / f"demo-{screen}.png").stat().st_size > 0


async def test_demo_is_not_found_when_disabled(client: httpx.AsyncClient) -> None:
    for path in ("/demo", "/demo/demo.js", "/demo/config.json"):
        response = await client.get(path)
        assert response.status_code == 404, path
