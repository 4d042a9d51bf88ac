"""The ministack S3/SQS emulator, run as a child process from its own virtualenv (it pins
botocore exactly, which would fight aioboto3's pin in ours)."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from devstack.ports import LOOPBACK, free_port, wait_for_port

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BINARY = REPO_ROOT / ".venv-ministack" / "bin" / "ministack"
# Fixed credentials the emulator accepts when it does not enforce IAM.
EMULATOR_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
STOP_TIMEOUT_S = 10


def ministack_binary() -> Path:
    binary = Path(os.environ.get("PICFORGE_MINISTACK", DEFAULT_BINARY))
    if not binary.exists():
        raise FileNotFoundError(
            f"ministack is not installed at {binary}: run `make ministack` "
            "(or set PICFORGE_MINISTACK to its executable)"
        )
    return binary


class Emulator:
    """A running ministack on a free loopback port. `enforce_iam` turns on its IAM checks;
    with `state_dir`, its state (buckets, objects, queues, messages) outlives a restart."""

    def __init__(
        self,
        *,
        enforce_iam: bool = False,
        log_path: Path | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.enforce_iam = enforce_iam
        self._log_path = log_path
        self._state_dir = state_dir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Emulator:
        env = {
            **os.environ,
            "BIND_HOST": LOOPBACK,
            "GATEWAY_PORT": str(self.port),
            "MINISTACK_HOST": LOOPBACK,
            "SERVICES": "s3,sqs,iam,sts,cloudfront,secretsmanager",
            "AUTH": "true" if self.enforce_iam else "false",
            "LOG_LEVEL": "WARNING",
        }
        if self._state_dir is not None:
            env |= {
                "PERSIST_STATE": "1",
                "STATE_DIR": str(self._state_dir / "state"),
                "S3_PERSIST": "1",
                "S3_DATA_DIR": str(self._state_dir / "s3"),
            }
        log_path = self._log_path or Path(os.devnull)
        with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self._process = subprocess.Popen(
                [str(ministack_binary())],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: Ctrl-C meant for `make dev` reaches us; we stop it in order.
                start_new_session=True,
            )
        process = self._process
        wait_for_port(self.port, timeout_s=30, is_alive=lambda: process.poll() is None)
        return self

    def reset(self) -> None:
        """Wipe every bucket, queue and IAM entity."""
        request = urllib.request.Request(f"{self.url}/_ministack/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    @contextmanager
    def down(self) -> Iterator[None]:
        """An outage: the emulator stops (saving its state, given a `state_dir`) and starts
        again on the same port when the block ends."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        # SIGTERM: ministack has been seen to ignore SIGINT.
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
