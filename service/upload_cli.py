"""`picforge upload PATH... [--wait] [--json] [--api-url URL]`: images to picforge from a terminal.

Directories are walked; files of a type this deployment does not accept, or over its size
limit, are skipped before anything is uploaded, and each skip is said on stderr. Each file is
declared, then PUT straight to S3 with its ticket under a progress bar. With `--wait`, every
image is followed until `ready` or `failed`. The result is a table, or with `--json` an array of
the image records on stdout (a file the API refused appears as `{"id": null, "filename": ...,
"status": "failed", "error": {...}}`). The exit status is 1 if any image failed, 2 if nothing
could be tried at all (no key, no such path, no API).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from service.api_client import (
    DEFAULT_API_URL,
    ApiClient,
    ClientError,
    Record,
    UploadLimits,
    api_key_from_environment,
    api_url_from,
)

CHUNK_BYTES = 256 * 1024
CONCURRENT_UPLOADS = 4
POLL_INTERVAL_S = 0.5
CONTENT_TYPES_BY_SUFFIX = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".avif": "image/avif",
    ".heic": "image/heic",
    ".heif": "image/heif",
}
FINISHED = ("ready", "failed")
stderr = Console(stderr=True, soft_wrap=True)


@dataclass(frozen=True)
class Candidate:
    path: Path
    content_type: str
    size_bytes: int


def walk(paths: list[str]) -> list[Path]:
    """Every file named or under a named directory (hidden ones left out), in a stable order."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file() and not any(part.startswith(".") for part in p.parts)
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            raise ClientError(f"{name}: no such file or directory")
    return found


def why_skipped(path: Path, limits: UploadLimits) -> str | None:
    content_type = CONTENT_TYPES_BY_SUFFIX.get(path.suffix.lower())
    if content_type is None or content_type not in limits.content_types:
        accepted = ", ".join(sorted(limits.content_types))
        return f"not an accepted image type (accepted: {accepted})"
    size = path.stat().st_size
    if size == 0:
        return "empty"
    if size > limits.max_bytes:
        return f"{size} bytes is over this deployment's limit of {limits.max_bytes} bytes"
    return None


def select(files: list[Path], limits: UploadLimits) -> list[Candidate]:
    chosen = []
    for path in files:
        reason = why_skipped(path, limits)
        if reason:
            stderr.print(f"skipped {path}: {reason}", highlight=False)
            continue
        content_type = CONTENT_TYPES_BY_SUFFIX[path.suffix.lower()]
        chosen.append(Candidate(path, content_type, path.stat().st_size))
    return chosen


async def read_chunks(path: Path, advance: Callable[[int], None]) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
            advance(len(chunk))
            yield chunk


async def send_to_s3(ticket: Record, path: Path, advance: Callable[[int], None]) -> None:
    # The ticket signs Content-Length: httpx then sends the stream as-is, not chunked.
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, write=300)) as s3:
        try:
            response = await s3.put(
                ticket["url"], content=read_chunks(path, advance), headers=ticket["headers"]
            )
        except httpx.TransportError as exc:
            raise ClientError(f"S3 did not take the upload ({type(exc).__name__})") from None
    if response.is_error:
        raise ClientError(f"S3 refused the upload (HTTP {response.status_code})", code="s3_refused")


async def wait_until_finished(api: ApiClient, image_id: str, timeout_s: float) -> Record:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        record = await api.get_image(image_id)
        if record["status"] in FINISHED or loop.time() > deadline:
            return record
        await asyncio.sleep(POLL_INTERVAL_S)


async def upload_one(
    api: ApiClient,
    candidate: Candidate,
    progress: Progress,
    *,
    wait_s: float | None,
    slots: asyncio.Semaphore,
) -> Record:
    task = progress.add_task(candidate.path.name, total=candidate.size_bytes)
    try:
        async with slots:
            created = await api.create_image(
                filename=candidate.path.name,
                content_type=candidate.content_type,
                size_bytes=candidate.size_bytes,
            )
            await send_to_s3(created["upload"], candidate.path, lambda n: progress.advance(task, n))
        if wait_s is not None:
            return await wait_until_finished(api, created["id"], wait_s)
        return await api.get_image(created["id"])
    except ClientError as exc:
        progress.update(task, description=f"{candidate.path.name} [red]failed")
        return {
            "id": None,
            "filename": str(candidate.path),
            "status": "failed",
            "error": {"code": exc.code or "upload_failed", "message": str(exc)},
        }


def print_table(records: list[Record]) -> None:
    table = Table("file", "id", "status", "size", "renditions")
    for record in records:
        size = f"{record['width']}x{record['height']}" if record.get("width") else ""
        renditions = ", ".join(
            f"{r['name']} {r['width']}x{r['height']}" for r in record.get("renditions", [])
        )
        status = record["status"]
        if record.get("error"):
            status = f"{status}: {record['error']['code']}"
        table.add_row(record["filename"], record["id"] or "-", status, size, renditions)
    Console().print(table)


async def upload(args: argparse.Namespace) -> int:
    key = api_key_from_environment()
    files = walk(args.paths)
    async with ApiClient(api_url_from(args.api_url), key) as api:
        await api.list_images(status=None, limit=1, cursor=None)  # a refused key stops here
        candidates = select(files, await api.upload_limits())
        if not candidates:
            stderr.print("nothing to upload")
            return 0 if files else 2
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
        with Progress(*columns, TransferSpeedColumn(), console=stderr) as progress:
            slots = asyncio.Semaphore(CONCURRENT_UPLOADS)
            wait_s = args.timeout if args.wait else None
            records = await asyncio.gather(
                *(upload_one(api, c, progress, wait_s=wait_s, slots=slots) for c in candidates)
            )
    if args.json:
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
    else:
        print_table(records)
    return 1 if any(record["status"] == "failed" for record in records) else 0


def run_upload(args: argparse.Namespace) -> None:
    try:
        status = asyncio.run(upload(args))
    except ClientError as exc:
        stderr.print(f"picforge upload: {exc}", highlight=False)
        raise SystemExit(2) from None
    raise SystemExit(status)


def add_upload_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "upload", help="upload images (files or directories) with PICFORGE_API_KEY"
    )
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument("--wait", action="store_true", help="wait until each is ready or failed")
    parser.add_argument("--json", action="store_true", help="print the records as a JSON array")
    parser.add_argument(
        "--api-url", help=f"the API (default: $PICFORGE_API_URL or {DEFAULT_API_URL})"
    )
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds --wait waits for each image"
    )
    parser.set_defaults(run=run_upload)
