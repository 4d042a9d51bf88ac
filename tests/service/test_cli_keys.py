"""`picforge keys`: create prints the key last, ensure is idempotent, revoke refuses, list hides
secrets."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.cli import main
from service.keys import generate_key, parse_key


@pytest.fixture
def cli_environment(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    monkeypatch.setenv("PICFORGE_DATABASE_URL", database_url)


async def picforge(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    """Run the CLI (it runs its own event loop, so in a thread) and return its output lines."""
    await asyncio.to_thread(main, list(argv))
    return capsys.readouterr().out.splitlines()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.usefixtures("cli_environment")
async def test_keys_create_prints_working_key_last(
    capsys: pytest.CaptureFixture[str], anonymous_client: httpx.AsyncClient
) -> None:
    key = (await picforge(capsys, "keys", "create", "carol"))[-1]

    parse_key(key)
    response = await anonymous_client.get("/v1/images", headers=bearer(key))
    assert response.status_code == 200


@pytest.mark.usefixtures("cli_environment")
async def test_keys_ensure_is_idempotent_for_fixed_key(
    capsys: pytest.CaptureFixture[str], anonymous_client: httpx.AsyncClient
) -> None:
    fixed = generate_key()

    first = await picforge(capsys, "keys", "ensure", "dev", fixed)
    second = await picforge(capsys, "keys", "ensure", "dev", fixed)

    assert first[-1] == second[-1] == fixed
    assert (await anonymous_client.get("/v1/images", headers=bearer(fixed))).status_code == 200
    listed = await picforge(capsys, "keys", "list")
    assert len([line for line in listed if line.startswith(parse_key(fixed).key_id)]) == 1


@pytest.mark.usefixtures("cli_environment")
async def test_keys_ensure_refuses_key_id_of_another_owner(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fixed = generate_key()
    await picforge(capsys, "keys", "ensure", "dev", fixed)

    with pytest.raises(SystemExit, match="already belongs"):
        await picforge(capsys, "keys", "ensure", "mallory", fixed)


@pytest.mark.usefixtures("cli_environment")
async def test_keys_ensure_refuses_malformed_key(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="pf_<16 hex digits>"):
        await picforge(capsys, "keys", "ensure", "dev", "hunter2")


@pytest.mark.usefixtures("cli_environment")
async def test_keys_revoke_refuses_key_from_then_on(
    capsys: pytest.CaptureFixture[str], anonymous_client: httpx.AsyncClient
) -> None:
    key = (await picforge(capsys, "keys", "create", "carol"))[-1]
    key_id = parse_key(key).key_id

    await picforge(capsys, "keys", "revoke", key_id)

    response = await anonymous_client.get("/v1/images", headers=bearer(key))
    assert response.status_code == 401
    [listed] = [line for line in await picforge(capsys, "keys", "list") if key_id in line]
    assert "revoked" in listed
    assert parse_key(key).secret not in listed


@pytest.mark.usefixtures("cli_environment")
async def test_keys_revoke_unknown_key_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="no key"):
        await picforge(capsys, "keys", "revoke", "0123456789abcdef")
