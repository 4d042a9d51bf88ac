"""`make dev`'s runner as a newcomer meets it: it starts everything, serves a real upload (the
API and the worker logged in as the app role, as on AWS), and a Ctrl-C or SIGTERM stops every
process it started, leaving nothing listening."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from devstack.ports import free_port
from devstack.postgres import APP_ROLE
from service.keys import generate_key
from tests.conftest import REPO_ROOT, TESTDATA

READY_LINE = "Ctrl-C stops everything."
START_TIMEOUT_S = 90


def is_listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def read_banner(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if READY_LINE in line:
            return "".join(lines)
    raise AssertionError("devstack never became ready:\n" + "".join(lines))


def banner_value(banner: str, label: str) -> str:
    found = re.search(rf"^\s+{re.escape(label)}\s+(\S+)", banner, re.MULTILINE)
    assert found, f"no {label} in the banner:\n{banner}"
    return found[1]


async def roles_logged_in(database_url: str) -> set[str]:
    """The roles of every other client session of the server, asked as its owner."""
    owner = await asyncpg.connect(database_url)
    try:
        rows = await owner.fetch(
            "SELECT DISTINCT usename FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
    finally:
        await owner.close()
    return {row["usename"] for row in rows}


def upload_and_wait(api: str, key: str, data: bytes) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=api, timeout=10, headers=headers) as http:
        created = http.post(
            "/v1/images",
            json={"filename": "cat.png", "content_type": "image/png", "size_bytes": len(data)},
        ).json()
        ticket = created["upload"]
        sent = httpx.post(ticket["url"], data=ticket["fields"], files={"file": ("f", data)})
        assert sent.status_code == 204, sent.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            record: dict[str, object] = http.get(f"/v1/images/{created['id']}").json()
            if record["status"] in ("ready", "failed"):
                return record
            time.sleep(0.2)
    raise AssertionError("the image never finished")


@pytest.mark.parametrize(
    ("stop_signal", "fixed_key"),
    [(signal.SIGINT, None), (signal.SIGTERM, generate_key())],
    ids=["ctrl-c-new-key", "sigterm-fixed-key"],
)
def test_devstack_serves_upload_and_stops_everything(
    stop_signal: signal.Signals, fixed_key: str | None
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PICFORGE_", "AWS_"))}
    if fixed_key:
        env["PICFORGE_DEV_API_KEY"] = fixed_key
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        banner = read_banner(process)
        emulator_port = int(banner_value(banner, "S3/SQS").rsplit(":", 1)[1])
        database_url = banner_value(banner, "database")
        socket_dir = Path(parse_qs(urlsplit(database_url).query)["host"][0])
        assert f"http://127.0.0.1:{port}/docs" in banner

        image = (TESTDATA / "good" / "hopper.png").read_bytes()
        key = banner_value(banner, "API key")
        assert key == fixed_key or (fixed_key is None and key.startswith("pf_"))
        record = upload_and_wait(f"http://127.0.0.1:{port}", key, image)
        assert record["status"] == "ready", record
        assert asyncio.run(roles_logged_in(database_url)) == {APP_ROLE}
        # The upload page is on, and offers the dev key.
        demo = httpx.get(f"http://127.0.0.1:{port}/demo/config.json", timeout=10)
        assert demo.json() == {"dev_api_key": key}

        # Ctrl-C in a terminal signals the whole foreground process group.
        os.killpg(process.pid, stop_signal)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        assert process.stdout is not None
        process.stdout.close()

    assert process.returncode == 0, output
    assert "stopping picforge" in output
    assert not is_listening(port)
    assert not is_listening(emulator_port)
    assert not list(socket_dir.glob(".s.PGSQL.*")), "PostgreSQL still has its socket open"
