"""`picforge limits`: overrides set from the command line take effect at the owner's next
request, `show` prints what the API enforces, `reset` brings the defaults back."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.cli import main
from service.owner_limits import parse_size

BODY = {"filename": "a.png", "content_type": "image/png", "size_bytes": 600}


@pytest.fixture
def cli_environment(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    monkeypatch.setenv("PICFORGE_DATABASE_URL", database_url)


async def picforge(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    await asyncio.to_thread(main, list(argv))
    return capsys.readouterr().out.splitlines()


def shown(lines: list[str]) -> dict[str, tuple[str, str]]:
    return {name: (value, source) for name, value, source in (line.split() for line in lines)}


@pytest.mark.usefixtures("cli_environment")
async def test_limits_set_overrides_one_owner_and_reset_restores_the_default(
    capsys: pytest.CaptureFixture[str],
    client: httpx.AsyncClient,
    other_client: httpx.AsyncClient,
) -> None:
    await picforge(capsys, "limits", "set", "alice", "--max-stored-bytes", "1KiB")

    first = await client.post("/v1/images", json=BODY)
    refused = await client.post("/v1/images", json=BODY)
    others = [await other_client.post("/v1/images", json=BODY) for _ in range(2)]
    report = shown(await picforge(capsys, "limits", "show", "alice"))
    await picforge(capsys, "limits", "reset", "alice", "max-stored-bytes")
    after_reset = await client.post("/v1/images", json=BODY)

    assert first.status_code == 201
    assert refused.status_code == 429
    assert refused.json()["code"] == "stored_bytes_quota_exceeded"
    assert [r.status_code for r in others] == [201, 201]  # bob keeps the defaults
    assert report["max-stored-bytes"] == ("1024", "override")
    assert report["create-rate"] == ("120", "default")
    assert report["stored-bytes"] == ("600", "used")
    assert report["awaiting-upload"] == ("1", "used")
    assert after_reset.status_code == 201


@pytest.mark.usefixtures("cli_environment")
async def test_limits_set_create_burst_refuses_the_next_create(
    capsys: pytest.CaptureFixture[str], client: httpx.AsyncClient
) -> None:
    await picforge(capsys, "limits", "set", "alice", "--create-burst", "2", "--create-rate", "1")

    statuses = [(await client.post("/v1/images", json=BODY)).status_code for _ in range(3)]
    refused = await client.post("/v1/images", json=BODY)

    assert statuses == [201, 201, 429]
    assert refused.headers["RateLimit-Policy"] == '"creates";q=1;w=60'
    assert 55 <= int(refused.headers["Retry-After"]) <= 120


@pytest.mark.usefixtures("cli_environment")
async def test_limits_show_of_owner_with_nothing_prints_the_defaults(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PICFORGE_CREATE_BURST", "7")

    report = shown(await picforge(capsys, "limits", "show", "nobody"))

    assert report["create-burst"] == ("7", "default")
    assert report["stored-bytes"] == ("0", "used")


@pytest.mark.usefixtures("cli_environment")
@pytest.mark.parametrize(
    "argv",
    [
        ["limits", "set", "alice"],
        ["limits", "set", "alice", "--create-rate", "0"],
        ["limits", "set", "alice", "--max-stored-bytes", "lots"],
        ["limits", "set", "Not An Owner", "--create-rate", "5"],
        ["limits", "reset", "alice", "no-such-limit"],
    ],
)
async def test_limits_refuses_bad_arguments_in_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        await picforge(capsys, *argv)

    assert exited.value.code != 0
    assert "Traceback" not in capsys.readouterr().err


def test_parse_size_reads_decimal_and_binary_units() -> None:
    assert parse_size("123") == 123
    assert parse_size("500MB") == 500 * 10**6
    assert parse_size("10GiB") == 10 * 2**30
    assert parse_size("2 kib") == 2048
