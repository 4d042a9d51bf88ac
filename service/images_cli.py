"""`picforge images list|get|delete`: the rest of the API from a terminal, with PICFORGE_API_KEY.

`list` prints a table of the owner's images (newest first; `--all` follows every page, `--json`
prints the records), `get ID` prints one record as JSON, `delete ID...` deletes images. An API
refusal is one line, `code: detail`, and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable

from rich.console import Console
from rich.table import Table

from service.api_client import (
    DEFAULT_API_URL,
    ApiClient,
    ClientError,
    Record,
    api_key_from_environment,
    api_url_from,
)

STATUSES = ("awaiting_upload", "processing", "ready", "failed")


def image_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an image id (a UUID)") from None


async def list_all(api: ApiClient, args: argparse.Namespace) -> list[Record]:
    records: list[Record] = []
    cursor = None
    while True:
        page = await api.list_images(status=args.status, limit=args.limit, cursor=cursor)
        records.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor or not args.all:
            return records


async def images_list(api: ApiClient, args: argparse.Namespace) -> None:
    records = await list_all(api, args)
    if args.json:
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        return
    table = Table("id", "status", "filename", "size", "renditions", "created")
    for record in records:
        size = f"{record['width']}x{record['height']}" if record.get("width") else ""
        status = record["status"]
        if record.get("error"):
            status = f"{status}: {record['error']['code']}"
        table.add_row(
            record["id"],
            status,
            record["filename"],
            size,
            str(len(record["renditions"])),
            record["created_at"][:19].replace("T", " "),
        )
    Console().print(table)


async def images_get(api: ApiClient, args: argparse.Namespace) -> None:
    sys.stdout.write(json.dumps(await api.get_image(args.image_id), indent=2) + "\n")


async def images_delete(api: ApiClient, args: argparse.Namespace) -> None:
    for image in args.image_ids:
        await api.delete_image(image)
        sys.stdout.write(f"deleted {image}\n")


Action = Callable[[ApiClient, argparse.Namespace], Awaitable[None]]


def run_with_api(action: Action) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        async def call() -> None:
            async with ApiClient(api_url_from(args.api_url), api_key_from_environment()) as api:
                await action(api, args)

        try:
            asyncio.run(call())
        except ClientError as exc:
            Console(stderr=True, soft_wrap=True).print(f"picforge images: {exc}", highlight=False)
            raise SystemExit(1) from None

    return run


def add_images_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("images", help="list, show or delete images (PICFORGE_API_KEY)")
    parser.add_argument(
        "--api-url", help=f"the API (default: $PICFORGE_API_URL or {DEFAULT_API_URL})"
    )
    actions = parser.add_subparsers(required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the owner's images, newest first")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--limit", type=int, default=20, help="images per page (1-100)")
    listing.add_argument("--all", action="store_true", help="follow every page")
    listing.add_argument("--json", action="store_true", help="print the records as JSON")
    listing.set_defaults(run=run_with_api(images_list))
    get = actions.add_parser("get", help="one image's record, as JSON")
    get.add_argument("image_id", type=image_id)
    get.set_defaults(run=run_with_api(images_get))
    delete = actions.add_parser("delete", help="delete images, their originals and renditions")
    delete.add_argument("image_ids", nargs="+", type=image_id, metavar="IMAGE_ID")
    delete.set_defaults(run=run_with_api(images_delete))
