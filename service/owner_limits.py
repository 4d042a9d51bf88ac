"""`picforge limits`: an owner's overrides of the default limits (`service.limits`), its usage.

picforge limits show OWNER            each limit (the override, or the default) and the usage
picforge limits set OWNER --create-rate 600 --max-stored-bytes 50GiB ...
picforge limits reset OWNER [LIMIT..] back to the defaults: every limit, or those named

Overrides are rows of `owner_limits`, read by every API process at the owner's next request:
no restart. They are the operator's, like API keys: the app role may only read them. The
defaults are the API's settings (`PICFORGE_CREATE_RATE_PER_MINUTE` and the rest), read here from
the same environment so that `show` prints what the API enforces.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.config import LimitSettings
from service.db import run_on_database
from service.keys import check_owner
from service.models import OwnerLimits, OwnerUsage

T = TypeVar("T")
Sessions = async_sessionmaker[AsyncSession]

# The command's name of each limit, and its column (the setting of the same name is its default).
LIMITS = {
    "create-rate": "create_rate_per_minute",
    "create-burst": "create_burst",
    "reprocess-rate": "reprocess_rate_per_minute",
    "max-awaiting-upload": "max_awaiting_upload",
    "max-stored-bytes": "max_stored_bytes",
}
UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
SIZE = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*$")


@dataclass(frozen=True)
class LimitRow:
    name: str
    value: int
    overridden: bool


@dataclass(frozen=True)
class OwnerReport:
    limits: list[LimitRow]
    awaiting_upload: int
    stored_bytes: int


def parse_size(text: str) -> int:
    """`123`, `500MB`, `10GiB`: a number of bytes."""
    match = SIZE.fullmatch(text)
    if match is None or match[2].upper() not in UNITS:
        raise argparse.ArgumentTypeError(f"{text!r}: give bytes, or a size like 500MB or 10GiB")
    return int(match[1]) * UNITS[match[2].upper()]


def count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def rate(text: str) -> int:
    if count(text) < 1:
        raise argparse.ArgumentTypeError("a rate or burst is at least 1 (revoke keys to stop one)")
    return int(text)


async def set_limits(sessions: Sessions, *, owner: str, values: dict[str, int]) -> None:
    """Override the named limits (columns of `owner_limits`) of `owner`; others stay as they are."""
    check_owner(owner)
    async with sessions.begin() as session:
        await session.execute(
            insert(OwnerLimits)
            .values(owner=owner, **values)
            .on_conflict_do_update(index_elements=["owner"], set_=values)
        )


async def reset_limits(sessions: Sessions, *, owner: str, columns: list[str]) -> None:
    """Back to the defaults: the columns named."""
    await set_limits(sessions, owner=owner, values=dict.fromkeys(columns, None))  # type: ignore[arg-type]


async def report_limits(sessions: Sessions, *, owner: str, defaults: LimitSettings) -> OwnerReport:
    check_owner(owner)
    async with sessions() as session:
        overrides = await session.get(OwnerLimits, owner)
        usage = await session.scalar(select(OwnerUsage).where(OwnerUsage.owner == owner))
    rows = []
    for name, column in LIMITS.items():
        override = getattr(overrides, column, None)
        value = getattr(defaults, column) if override is None else override
        rows.append(LimitRow(name=name, value=value, overridden=override is not None))
    return OwnerReport(
        limits=rows,
        awaiting_upload=usage.awaiting_upload if usage else 0,
        stored_bytes=usage.stored_bytes if usage else 0,
    )


def run(use_case: Callable[[Sessions], Awaitable[T]]) -> T:
    return run_on_database(use_case, command="picforge limits")


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def limits_show(args: argparse.Namespace) -> None:
    report = run(
        lambda sessions: report_limits(sessions, owner=args.owner, defaults=LimitSettings())
    )
    for row in report.limits:
        say(f"{row.name:<20} {row.value:>14}  {'override' if row.overridden else 'default'}")
    say(f"{'awaiting-upload':<20} {report.awaiting_upload:>14}  used")
    say(f"{'stored-bytes':<20} {report.stored_bytes:>14}  used")


def limits_set(args: argparse.Namespace) -> None:
    values = {
        column: getattr(args, column)
        for column in LIMITS.values()
        if getattr(args, column) is not None
    }
    if not values:
        raise SystemExit("picforge limits set: name at least one limit, e.g. --create-rate 600")
    run(lambda sessions: set_limits(sessions, owner=args.owner, values=values))
    say(f"limits of {args.owner}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


def limits_reset(args: argparse.Namespace) -> None:
    unknown = sorted(set(args.limits) - set(LIMITS))
    if unknown:
        raise SystemExit(
            f"picforge limits reset: no limit {unknown[0]}; one of {', '.join(LIMITS)}"
        )
    columns = [LIMITS[name] for name in args.limits or LIMITS]
    run(lambda sessions: reset_limits(sessions, owner=args.owner, columns=columns))
    say(f"limits of {args.owner} back to the defaults: {', '.join(args.limits or LIMITS)}")


def add_limits_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("limits", help="an owner's rate limits and quotas")
    actions = parser.add_subparsers(required=True, metavar="ACTION")
    show = actions.add_parser("show", help="an owner's limits and what it uses")
    show.add_argument("owner")
    show.set_defaults(run=limits_show)
    change = actions.add_parser("set", help="override some of an owner's limits")
    change.add_argument("owner")
    change.add_argument("--create-rate", dest="create_rate_per_minute", type=rate, metavar="N")
    change.add_argument("--create-burst", dest="create_burst", type=rate, metavar="N")
    change.add_argument(
        "--reprocess-rate", dest="reprocess_rate_per_minute", type=rate, metavar="N"
    )
    change.add_argument("--max-awaiting-upload", dest="max_awaiting_upload", type=count)
    change.add_argument(
        "--max-stored-bytes", dest="max_stored_bytes", type=parse_size, metavar="SIZE"
    )
    change.set_defaults(run=limits_set)
    reset = actions.add_parser("reset", help="back to the defaults (every limit, or those named)")
    reset.add_argument("owner")
    reset.add_argument("limits", nargs="*", metavar="LIMIT", help=", ".join(LIMITS))
    reset.set_defaults(run=limits_reset)
