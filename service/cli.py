"""`picforge`: the operator's command line.

picforge migrate              apply database migrations (run before a new version starts)
picforge serve [--host --port] run the API under uvicorn
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import uvicorn
from alembic import command

from service.config import ApiSettings, DatabaseSettings
from service.db import (
    SchemaNotMigrated,
    alembic_config,
    create_engine,
    head_revision,
    require_migrated,
)


def migrate(_: argparse.Namespace) -> None:
    settings = DatabaseSettings()
    command.upgrade(alembic_config(settings.sqlalchemy_url), "head")
    print("database migrated to revision", head_revision())


async def _check_migrated(settings: ApiSettings) -> None:
    engine = create_engine(settings)
    try:
        await require_migrated(engine)
    finally:
        await engine.dispose()


def serve(args: argparse.Namespace) -> None:
    settings = ApiSettings()
    try:
        asyncio.run(_check_migrated(settings))
    except SchemaNotMigrated as exc:
        raise SystemExit(f"picforge serve: {exc}") from None
    uvicorn.run(
        "service.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        access_log=args.access_log,
    )


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
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    args.run(args)
