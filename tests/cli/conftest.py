"""The `picforge` command as a user runs it: a child process, against the real servers."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

from tests.conftest import REPO_ROOT

PICFORGE = [sys.executable, "-c", "from service.cli import main; main()"]
COMMAND_TIMEOUT_S = 180


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


async def picforge(*args: str, env: dict[str, str]) -> Ran:
    """Run `picforge ARGS` with `env` over this environment, without blocking the event loop
    (the worker fixture runs in it)."""
    process = await asyncio.create_subprocess_exec(
        *PICFORGE,
        *args,
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "200", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_S)
    assert process.returncode is not None
    return Ran(process.returncode, stdout.decode(), stderr.decode())
