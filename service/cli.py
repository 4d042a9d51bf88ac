"""`picforge`: the operator's command line.

picforge migrate                 apply database migrations (run before a new version starts)
picforge serve [--host --port]   run the API under uvicorn
picforge keys create OWNER       make an API key; the key is the last line printed, shown once
    [--into-secret NAME]         ...or write it into a new Secrets Manager secret, print its ARN
picforge keys ensure OWNER [KEY] make KEY (or a new key) valid for OWNER; prints it last
picforge keys revoke KEY_ID      refuse a key from now on
picforge keys list               every key's id, owner and state (never the secret)
picforge limits show|set|reset OWNER  an owner's rate limits and quotas (service.owner_limits)
picforge openapi                 print the OpenAPI document (`> openapi.json` to refresh it)
picforge reconcile [--dry-run]   fix drift between S3 and the records, printing each fix
picforge upload PATH...          upload images with PICFORGE_API_KEY (service.upload_cli)
picforge images list|get|delete  the owner's images (service.images_cli)
picforge doctor                  check a deployment's AWS resources and database (service.doctor)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TypeVar

import uvicorn

from service import keys
from service.config import ApiSettings, DatabaseSettings
from service.db import (
    SchemaNotMigrated,
    head_revision,
    run_on_database,
    upgrade_database,
)
from service.doctor import add_doctor_command
from service.images_cli import add_images_commands
from service.key_secrets import create_key_in_secret
from service.owner_limits import add_limits_commands
from service.startup import (
    check_database,
    check_dependencies,
    exit_on_bad_configuration,
    load_settings,
)
from service.upload_cli import add_upload_command

T = TypeVar("T")


def migrate(_: argparse.Namespace) -> None:
    with exit_on_bad_configuration("migrate"):
        settings = load_settings(DatabaseSettings)
        with suppress(SchemaNotMigrated):  # what this command is for
            asyncio.run(check_database(settings))
        asyncio.run(upgrade_database(settings))
    print("database migrated to revision", head_revision())


def serve(args: argparse.Namespace) -> None:
    with exit_on_bad_configuration("serve"):
        settings = load_settings(ApiSettings)
        asyncio.run(check_dependencies(settings, settings))
    uvicorn.run(
        "service.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        access_log=args.access_log,
    )


def run_keys(use_case: Callable[[keys.Sessions], Awaitable[T]]) -> T:
    return run_on_database(use_case, command="picforge keys")


def keys_create(args: argparse.Namespace) -> None:
    if args.into_secret:
        stored = run_keys(
            lambda sessions: create_key_in_secret(
                sessions, DatabaseSettings(), owner=args.owner, secret_name=args.into_secret
            )
        )
        print(f"new API key {stored.key_id} for {stored.owner}, stored only in secret:")
        print(stored.secret_arn)
        return
    plaintext = run_keys(lambda sessions: keys.create_key(sessions, owner=args.owner))
    print(f"new API key for {args.owner}; it is shown only this once:")
    print(plaintext)


def keys_ensure(args: argparse.Namespace) -> None:
    plaintext: str = args.key or keys.generate_key()
    run_keys(lambda sessions: keys.ensure_key(sessions, owner=args.owner, plaintext=plaintext))
    print(f"API key for {args.owner}:")
    print(plaintext)


def keys_revoke(args: argparse.Namespace) -> None:
    if not run_keys(lambda sessions: keys.revoke_key(sessions, key_id=args.key_id)):
        raise SystemExit(f"picforge keys: there is no key {args.key_id}")
    print("revoked", args.key_id)


def keys_list(_: argparse.Namespace) -> None:
    for key in run_keys(keys.list_keys):
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        print(f"{key.key_id}  {key.owner:<24}  created {key.created_at:%Y-%m-%d %H:%M}  {state}")


def openapi(_: argparse.Namespace) -> None:
    from service.main import create_app  # the whole app: only this command needs it
    from service.openapi import render_document

    sys.stdout.write(render_document(create_app()))


def reconcile(args: argparse.Namespace) -> None:
    # The worker's code, as `python -m worker` is: what a superseded rendition is depends on
    # the worker's presets, so reconcile lives with it (worker.reconciling), read at run time.
    from worker.reconciling import main as run_reconcile

    try:
        run_reconcile(dry_run=args.dry_run)
    except SchemaNotMigrated as exc:
        raise SystemExit(f"picforge reconcile: {exc}") from None


def add_keys_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys_parser = commands.add_parser("keys", help="manage API keys")
    actions = keys_parser.add_subparsers(required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make a new key for OWNER; printed last, once")
    create.add_argument("owner")
    create.add_argument(
        "--into-secret",
        metavar="NAME",
        help="write the key into a new Secrets Manager secret NAME; print its ARN, not the key",
    )
    create.set_defaults(run=keys_create)
    ensure = actions.add_parser("ensure", help="make KEY (default: a new one) valid for OWNER")
    ensure.add_argument("owner")
    ensure.add_argument("key", nargs="?", help="pf_<16 hex digits>_<43+ base64url characters>")
    ensure.set_defaults(run=keys_ensure)
    revoke = actions.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("key_id", help="the 16 hex digits after pf_")
    revoke.set_defaults(run=keys_revoke)
    list_parser = actions.add_parser("list", help="list keys (never their secrets)")
    list_parser.set_defaults(run=keys_list)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="picforge", description="picforge operations")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    migrate_parser = commands.add_parser("migrate", help="apply database migrations")
    migrate_parser.set_defaults(run=migrate)

    serve_parser = commands.add_parser("serve", help="run the API")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument(
        "--forwarded-allow-ips", default="127.0.0.1", help="proxies trusted for X-Forwarded-*"
    )
    serve_parser.add_argument("--no-access-log", dest="access_log", action="store_false")
    serve_parser.set_defaults(run=serve)

    add_keys_commands(commands)
    add_limits_commands(commands)
    openapi_parser = commands.add_parser("openapi", help="print the OpenAPI document")
    openapi_parser.set_defaults(run=openapi)
    reconcile_parser = commands.add_parser(
        "reconcile", help="fix drift between S3 and the records (needs the worker's settings)"
    )
    reconcile_parser.add_argument(
        "--dry-run", action="store_true", help="print what would be fixed; change nothing"
    )
    reconcile_parser.set_defaults(run=reconcile)
    add_upload_command(commands)
    add_images_commands(commands)
    add_doctor_command(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    args.run(args)
