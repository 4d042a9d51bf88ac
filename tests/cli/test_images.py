"""`picforge images list|get|delete` against a real API."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.cli.conftest import picforge
from tests.cli.test_upload import client_env
from tests.conftest import TESTDATA, LiveApi

# Each `picforge` run is a fresh Python process: seconds apiece on a loaded machine.
pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.timeout(600)]


async def test_images_list_get_delete_round_trip(live_api: LiveApi) -> None:
    env = client_env(live_api)
    uploaded = await picforge(
        "upload", str(TESTDATA / "good" / "hopper.png"), "--wait", "--json", env=env
    )
    [record] = json.loads(uploaded.stdout)

    listed = await picforge("images", "list", "--json", env=env)
    table = await picforge("images", "list", env=env)
    got = await picforge("images", "get", record["id"], env=env)
    deleted = await picforge("images", "delete", record["id"], env=env)
    again = await picforge("images", "get", record["id"], env=env)

    assert [r["id"] for r in json.loads(listed.stdout)] == [record["id"]]
    assert record["id"] in table.stdout and "ready" in table.stdout
    assert json.loads(got.stdout)["status"] == "ready"
    assert deleted.returncode == 0 and deleted.stdout == f"deleted {record['id']}\n"
    assert again.returncode == 1
    assert again.stderr.startswith("picforge images: image_not_found: ")


async def test_images_get_refuses_what_is_not_an_id(live_api: LiveApi) -> None:
    ran = await picforge("images", "get", "../keys", env=client_env(live_api))

    assert ran.returncode == 2
    assert "is not an image id" in ran.stderr


async def test_images_list_follows_every_page_with_all(live_api: LiveApi) -> None:
    env = client_env(live_api)
    paths = [str(TESTDATA / "good" / name) for name in ("hopper.png", "hopper.jpg")]
    await picforge("upload", *paths, "--json", env=env)

    one_page = await picforge("images", "list", "--limit", "1", "--json", env=env)
    every_page = await picforge("images", "list", "--limit", "1", "--all", "--json", env=env)

    assert len(json.loads(one_page.stdout)) == 1
    ids = [r["id"] for r in json.loads(every_page.stdout)]
    assert len(ids) == 2 and all(uuid.UUID(i) for i in ids)
