"""`make dev`: the whole stack on this machine, with no AWS account and no Docker.

Starts embedded PostgreSQL and the ministack emulator (unless PICFORGE_DATABASE_URL or
PICFORGE_AWS_ENDPOINT_URL name others), provisions the buckets and queues, applies migrations,
then runs the API and the worker until Ctrl-C or SIGTERM, and stops everything it started.
On the embedded database the API and the worker log in as the app role, as on AWS.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

from botocore.exceptions import BotoCoreError, ClientError

from devstack.emulator import EMULATOR_CREDENTIALS, Emulator
from devstack.ports import free_port, wait_for_port
from devstack.postgres import APP_ROLE, EmbeddedPostgres, as_app_role
from devstack.provision import provision
from service.keys import InvalidKey, parse_key

STATE_DIR = Path(".devstack")
CHILD_STOP_TIMEOUT_S = 40  # above the worker's default drain


class Stopped(Exception):
    pass


def raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


class BadSetting(Exception):
    """A setting `make dev` cannot use; the message names it and what is expected."""


def check_dev_settings(env: dict[str, str]) -> None:
    """What `make dev` itself reads, checked before anything starts."""
    key = env.get("PICFORGE_DEV_API_KEY")
    if key:
        try:
            parse_key(key)
        except InvalidKey:
            raise BadSetting(
                "PICFORGE_DEV_API_KEY: expected pf_<16 hex digits>_<at least 43 base64url "
                "characters> (`picforge keys create` prints one), or unset it for a new key"
            ) from None


def stack_environment(stack: ExitStack, port: int) -> dict[str, str]:
    env = dict(os.environ)
    if not env.get("PICFORGE_DATABASE_URL"):
        print("starting embedded PostgreSQL ...", flush=True)
        env["PICFORGE_DATABASE_URL"] = stack.enter_context(EmbeddedPostgres()).url
    if not env.get("PICFORGE_AWS_ENDPOINT_URL"):
        print("starting the ministack S3/SQS emulator ...", flush=True)
        emulator = stack.enter_context(Emulator(log_path=STATE_DIR / "ministack.log"))
        env["PICFORGE_AWS_ENDPOINT_URL"] = emulator.url
        env.update(EMULATOR_CREDENTIALS)
    env.setdefault("AWS_ACCESS_KEY_ID", EMULATOR_CREDENTIALS["AWS_ACCESS_KEY_ID"])
    env.setdefault("AWS_SECRET_ACCESS_KEY", EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    region = env.setdefault("PICFORGE_AWS_REGION", "us-east-1")
    endpoint = env["PICFORGE_AWS_ENDPOINT_URL"]
    try:
        provisioned = provision(
            endpoint, region=region, credentials=env, cors_origins=api_origins(port)
        )
    except (BotoCoreError, ClientError) as exc:
        raise BadSetting(
            f"PICFORGE_AWS_ENDPOINT_URL: cannot provision S3/SQS at {endpoint} ({exc}); "
            "expected a reachable S3/SQS emulator, or unset it to start one"
        ) from None
    env["PICFORGE_UPLOADS_BUCKET"] = provisioned.names.uploads_bucket
    env["PICFORGE_RENDITIONS_BUCKET"] = provisioned.names.renditions_bucket
    env["PICFORGE_QUEUE_URL"] = provisioned.queue_url
    # The API serves the upload page, offering the dev key, and its origin may upload to S3.
    env.setdefault("PICFORGE_DEMO_ENABLED", "true")
    return env


def api_origins(port: int) -> tuple[str, ...]:
    return (f"http://127.0.0.1:{port}", f"http://localhost:{port}")


def ensure_dev_key(picforge: list[str], env: dict[str, str]) -> str:
    """A key for owner `dev`: PICFORGE_DEV_API_KEY when set (so it survives restarts), else new."""
    fixed = [env["PICFORGE_DEV_API_KEY"]] if env.get("PICFORGE_DEV_API_KEY") else []
    ensured = subprocess.run(
        [*picforge, "keys", "ensure", "dev", *fixed],
        env=env,
        capture_output=True,
        text=True,
    )
    if ensured.returncode != 0:
        raise BadSetting(ensured.stderr.strip() or "picforge keys ensure failed")
    return ensured.stdout.splitlines()[-1]


def start_child(
    stack: ExitStack, name: str, argv: list[str], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(argv, env=env, start_new_session=True)
    stack.callback(stop_child, name, child)
    return child


def stop_child(name: str, child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(CHILD_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in {CHILD_STOP_TIMEOUT_S} s; killing it", flush=True)
            child.kill()
            child.wait()


def run(port: int) -> int:
    STATE_DIR.mkdir(exist_ok=True)
    signal.signal(signal.SIGTERM, raise_stopped)
    signal.signal(signal.SIGINT, raise_stopped)
    picforge = [sys.executable, "-c", "from service.cli import main; main()"]
    with ExitStack() as stack:
        try:
            check_dev_settings(dict(os.environ))
            embedded_database = not os.environ.get("PICFORGE_DATABASE_URL")
            env = stack_environment(stack, port)
            if subprocess.run([*picforge, "migrate"], env=env).returncode != 0:
                return 1  # it said why, in one line
            dev_key = ensure_dev_key(picforge, env)
            env.setdefault("PICFORGE_DEMO_API_KEY", dev_key)
            env.setdefault("PICFORGE_WORKER_METRICS_HOST", "127.0.0.1")
            env.setdefault("PICFORGE_WORKER_METRICS_PORT", str(free_port()))
            serving = dict(env)  # the migrations and the dev key are the owner's
            if embedded_database:
                serving["PICFORGE_DATABASE_URL"] = as_app_role(env["PICFORGE_DATABASE_URL"])
            children = {
                "api": start_child(
                    stack, "api", [*picforge, "serve", "--port", str(port)], serving
                ),
                "worker": start_child(stack, "worker", [sys.executable, "-m", "worker"], serving),
            }
            wait_for_port(port, timeout_s=120, is_alive=lambda: children["api"].poll() is None)
            logins = f"   (the API and the worker as {APP_ROLE})" if embedded_database else ""
            print(
                f"\npicforge is running\n"
                f"  API       http://127.0.0.1:{port}\n"
                f"  docs      http://127.0.0.1:{port}/docs\n"
                f"  demo      http://127.0.0.1:{port}/demo   (uploads from the browser)\n"
                f"  metrics   http://127.0.0.1:{env['PICFORGE_WORKER_METRICS_PORT']}/metrics\n"
                f"  S3/SQS    {env['PICFORGE_AWS_ENDPOINT_URL']}\n"
                f"  database  {env['PICFORGE_DATABASE_URL']}{logins}\n"
                f"  API key   {dev_key}   (owner `dev`; send it as `Authorization: Bearer …`)\n"
                "Ctrl-C stops everything.\n",
                flush=True,
            )
            while True:
                for name, child in children.items():
                    if child.poll() is not None:
                        print(f"{name} exited with {child.returncode}; stopping", flush=True)
                        return 1
                time.sleep(0.5)
        except BadSetting as exc:
            print(f"make dev: {exc}", file=sys.stderr, flush=True)
            return 1
        except Stopped as stopped:
            print(f"\n{stopped}: stopping picforge ...", flush=True)
            return 0
        finally:
            # Further signals must not interrupt the orderly shutdown below.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--port", type=int, default=None)
    port = parser.parse_args().port
    if port is None:
        value = os.environ.get("PICFORGE_DEV_PORT", "8000")
        if not value.isdigit() or not 0 < int(value) < 65536:
            sys.exit(f"make dev: PICFORGE_DEV_PORT: expected a TCP port (1-65535), got {value!r}")
        port = int(value)
    sys.exit(run(port))


if __name__ == "__main__":
    main()
