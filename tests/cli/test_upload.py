"""`picforge upload` against a real API, worker, PostgreSQL and emulator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from service.keys import generate_key
from tests.cli.conftest import picforge
from tests.conftest import TESTDATA, LiveApi

# Each `picforge` run is a fresh Python process: seconds apiece on a loaded machine.
pytestmark = pytest.mark.timeout(600)
with_worker = pytest.mark.usefixtures("worker")

MiB = 1024 * 1024


def client_env(api: LiveApi) -> dict[str, str]:
    return {"PICFORGE_API_KEY": api.key, "PICFORGE_API_URL": api.url}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder as a user has one: two images, one in a subfolder, a text file, a hidden file,
    and an image over the default 50 MiB limit (sparse: no disk is spent on it)."""
    folder = tmp_path / "photos"
    (folder / "trip").mkdir(parents=True)
    shutil.copy(TESTDATA / "good" / "hopper.jpg", folder / "hopper.jpg")
    shutil.copy(TESTDATA / "good" / "transparent.png", folder / "trip" / "dice.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"\0")
    with (folder / "huge.png").open("wb") as huge:
        huge.truncate(50 * MiB + 1)
    return folder


@with_worker
async def test_upload_directory_skips_oversize_and_unaccepted_then_waits_as_json(
    live_api: LiveApi, photos: Path
) -> None:
    ran = await picforge("upload", str(photos), "--wait", "--json", env=client_env(live_api))

    assert ran.returncode == 0, ran.stderr
    assert f"skipped {photos / 'huge.png'}: 52428801 bytes is over" in ran.stderr
    assert f"skipped {photos / 'notes.txt'}: not an accepted image type" in ran.stderr
    assert ".DS_Store" not in ran.stderr
    records = json.loads(ran.stdout)
    assert sorted(r["filename"] for r in records) == ["dice.png", "hopper.jpg"]
    for record in records:
        assert record["status"] == "ready", record
        assert len(record["renditions"]) == 4
    # The progress bars went to stderr, leaving stdout for the JSON.
    assert "hopper.jpg" in ran.stderr


@with_worker
async def test_upload_exits_1_and_shows_the_code_when_an_image_fails(live_api: LiveApi) -> None:
    good = TESTDATA / "good" / "hopper.png"
    bad = TESTDATA / "bad" / "truncated_jpeg.jpg"

    ran = await picforge("upload", str(good), str(bad), "--wait", env=client_env(live_api))

    assert ran.returncode == 1, ran.stderr
    [good_row] = [line for line in ran.stdout.splitlines() if "hopper.png" in line]
    [bad_row] = [line for line in ran.stdout.splitlines() if "truncated_jpeg.jpg" in line]
    assert "ready" in good_row and "thumb 128x128" in good_row
    assert "failed: corrupt_image" in bad_row


@with_worker
async def test_upload_without_wait_reports_each_image_as_it_stands(live_api: LiveApi) -> None:
    ran = await picforge(
        "upload", str(TESTDATA / "good" / "hopper.jpg"), "--json", env=client_env(live_api)
    )

    assert ran.returncode == 0, ran.stderr
    [record] = json.loads(ran.stdout)
    # Not waited for: still awaiting the S3 event, or already with the worker.
    assert record["status"] in {"awaiting_upload", "processing", "ready"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PICFORGE_API_KEY": ""}, "PICFORGE_API_KEY: set it to an API key"),
        ({"PICFORGE_API_KEY": "secret"}, "PICFORGE_API_KEY: an API key looks like pf_"),
        ({}, "cannot reach the API at http://127.0.0.1:9 (ConnectError)"),
    ],
    ids=["no-key", "malformed-key", "no-api"],
)
async def test_upload_exits_2_with_one_line_when_nothing_can_be_tried(
    env: dict[str, str], message: str
) -> None:
    ran = await picforge(
        "upload",
        str(TESTDATA / "good" / "hopper.jpg"),
        env={"PICFORGE_API_KEY": generate_key(), "PICFORGE_API_URL": "http://127.0.0.1:9", **env},
    )

    assert ran.returncode == 2
    assert ran.stderr.startswith("picforge upload: ")
    assert message in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1
    assert "Traceback" not in ran.stderr


async def test_upload_with_an_unknown_key_exits_2_before_any_upload(live_api: LiveApi) -> None:
    env = {**client_env(live_api), "PICFORGE_API_KEY": generate_key()}

    ran = await picforge("upload", str(TESTDATA / "good" / "hopper.jpg"), env=env)

    assert ran.returncode == 2
    assert ran.stderr.startswith("picforge upload: unauthorized: ")
    assert "hopper.jpg" not in ran.stderr


async def test_upload_of_a_missing_path_uploads_nothing(live_api: LiveApi, tmp_path: Path) -> None:
    ran = await picforge(
        "upload",
        str(TESTDATA / "good" / "hopper.jpg"),
        str(tmp_path / "nope"),
        env=client_env(live_api),
    )

    assert ran.returncode == 2
    assert f"{tmp_path / 'nope'}: no such file or directory" in ran.stderr
    listed = await picforge("images", "list", "--json", env=client_env(live_api))
    assert json.loads(listed.stdout) == []
