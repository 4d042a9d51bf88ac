"""Uppy's `@uppy/aws-s3` in Chromium, wired as the README's recipe says: a small file by POST
ticket and a large one in parts both end `ready`; the large one is cut off after its first
part and, retried, resumes from the parts S3 holds rather than from zero."""

from __future__ import annotations

from pathlib import Path

import boto3
import httpx
import pytest

from devstack.provision import UPLOADS_CORS, Stack
from service.config import ApiSettings
from tests.browser.conftest import run_script
from tests.conftest import REPO_ROOT, TESTDATA, LiveApi
from tests.flow import wait_until_finished
from tests.pictures import noise_png

pytestmark = pytest.mark.usefixtures("worker")

PART = ApiSettings.model_fields["multipart_part_bytes"].default  # what `live_api` runs with


async def test_uppy_uploads_small_by_post_and_large_in_parts_resuming_after_a_cut(
    live_api: LiveApi, stack: Stack, chromium: str, tmp_path: Path
) -> None:
    if not (REPO_ROOT / "node_modules" / "uppy" / "dist").is_dir():
        pytest.fail("uppy is not installed: `npm ci` (make test does)")
    large = tmp_path / "panorama.png"
    large.write_bytes(noise_png(3000, 2000))  # 18 MB: three parts of 8 MiB
    assert 2 * PART < large.stat().st_size <= 3 * PART
    files = [
        {"name": "hopper.jpg", "type": "image/jpeg", "path": str(TESTDATA / "good" / "hopper.jpg")},
        {"name": "panorama.png", "type": "image/png", "path": str(large)},
    ]

    # The uploads bucket's own CORS rule, for the origin this API happens to listen on.
    boto3.client("s3", endpoint_url=live_api.s3_url).put_bucket_cors(
        Bucket=stack.names.uploads_bucket,
        CORSConfiguration={"CORSRules": [{**UPLOADS_CORS, "AllowedOrigins": [live_api.url]}]},
    )
    seen = await run_script(
        "uppy.mjs",
        {
            "apiUrl": live_api.url,
            "s3Url": live_api.s3_url,
            "key": live_api.key,
            "files": files,
            "partSize": PART,
            "large": "panorama.png",
            "executablePath": chromium,
        },
    )

    assert seen["blocked"] == [], seen
    assert seen["pageErrors"] == [], "\n".join(seen["pageErrors"])
    assert seen["succeeded"] == ["hopper.jpg", "panorama.png"], seen
    calls = seen["calls"]
    # The small file went by its POST ticket: no multipart route was called for it.
    assert calls.count("POST /v1/images") == 2, calls
    # Cut off after part 1, paused, resumed: Uppy listed the parts S3 held, and sent only the
    # missing ones. S3 accepted each part once; part 1 was never sent again.
    dropped = [p["partNumber"] for p in seen["partPuts"] if p["outcome"] == "dropped"]
    sent = [p["partNumber"] for p in seen["partPuts"] if p["outcome"] == "sent"]
    assert dropped and set(dropped) == {2}, seen["partPuts"]
    assert sorted(sent) == sorted(seen["partsAccepted"]) == [1, 2, 3], seen["partPuts"]
    resumed = calls.index("resumed")
    assert calls.index("GET /v1/images/{id}/multipart/{upload}/parts") > resumed, calls
    assert calls.count("POST /v1/images/{id}/multipart/{upload}/complete") == 1, calls
    assert "DELETE /v1/images/{id}/multipart/{upload}" not in calls, calls
    headers = {"Authorization": f"Bearer {live_api.key}"}
    async with httpx.AsyncClient(base_url=live_api.url, headers=headers) as client:
        for name, image_id in seen["images"].items():
            record = await wait_until_finished(client, image_id, timeout_s=120)
            assert record["status"] == "ready", (name, record)
    assert record["width"] == 3000
