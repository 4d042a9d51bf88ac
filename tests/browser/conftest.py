"""The browser tests: Debian's Chromium driven by Node's playwright-core, against a real
`picforge serve` on a free port (`live_api`), the real worker, PostgreSQL and the emulator.

Each test runs one script from this folder with `node`, handing it a JSON argument; the script
prints one JSON object of what it saw, and the test asserts on that. Screenshots land in
`.artifacts/browser/` (or `$PICFORGE_TEST_ARTIFACTS/browser/`).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO_ROOT

SCRIPTS = Path(__file__).parent
SCRIPT_TIMEOUT_S = 240


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("no chromium on PATH: `apt-get install -y chromium` (.ci/run does)")
    if not (REPO_ROOT / "node_modules" / "playwright-core").is_dir():
        pytest.fail("playwright-core is not installed: `npm ci` (make test does)")
    return path


@pytest.fixture(scope="session")
def artifacts() -> Path:
    root = Path(os.environ.get("PICFORGE_TEST_ARTIFACTS", REPO_ROOT / ".artifacts"))
    folder = root / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def run_script(script: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run `node tests/browser/<script>` and return the JSON object it printed."""
    node = await asyncio.create_subprocess_exec(
        "node",
        str(SCRIPTS / script),
        json.dumps(arguments),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(node.communicate(), SCRIPT_TIMEOUT_S)
    assert node.returncode == 0, f"{script} failed:\n{stderr.decode()}"
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


def operation_count(api_url: str) -> int:
    document = httpx.get(f"{api_url}/openapi.json").json()
    return sum(len(methods) for methods in document["paths"].values())
