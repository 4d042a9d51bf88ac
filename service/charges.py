"""Charging an owner's limits (`service.limits`): the statements that take a create or a
reprocess token, and read why one was refused.

A rate is a GCRA: one timestamp per owner and limit, the theoretical arrival time (TAT). With
`T = 60 s / rate`, a request is allowed when `max(TAT, now) + T <= now + burst * T`, and moves the
TAT there; so an idle owner may send `burst` at once, then one every `T`. A refusal knows the
exact wait: `max(TAT, now) - now - (burst - 1) * T`.

The create's check rides in its INSERT (`create_charge`): the statement takes a token from the
owner's row with an UPDATE ... RETURNING whose WHERE also holds both quotas, and the INSERT selects
from what the UPDATE returned. A refused create is the same one round trip, and says why. The
row lock the UPDATE takes orders one owner's creates, so no two of them both take the last unit
of a quota.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Float,
    Integer,
    Interval,
    Row,
    Select,
    String,
    Update,
    bindparam,
    extract,
    func,
    insert,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from service.errors import TooManyRequests
from service.keys import ACTIVE_KEY_OWNER, ParsedKey, key_parameters
from service.limits import WINDOW_S, Limits, Rate
from service.models import Image, OwnerLimits, OwnerUsage


class UsageMissing(Exception):
    """The owner has no usage row yet (no image so far): make it, then charge again."""


def interval_of(per_minute: Any, times: Any = None) -> Any:
    """One emission interval of a rate (or `times` of them), as an SQL interval."""
    seconds = literal_column(f"{WINDOW_S}.0", Float)
    if times is not None:
        seconds = seconds * times
    zero = literal_column("0", Integer)
    return func.make_interval(
        zero, zero, zero, zero, zero, zero, seconds / per_minute, type_=Interval
    )


def backlog_s(tat: Any) -> Any:
    """max(TAT, now) - now, in seconds."""
    return extract("epoch", func.greatest(func.coalesce(tat, func.now()), func.now()) - func.now())


def gcra(tat: Any, per_minute: Any, burst: Any) -> tuple[ColumnElement[Any], ColumnElement[bool]]:
    """The TAT after one more request, and whether that request is allowed."""
    next_tat = func.greatest(func.coalesce(tat, func.now()), func.now()) + interval_of(per_minute)
    return next_tat, next_tat <= func.now() + interval_of(per_minute, burst)


def create_charge(owners: Select[Any], *, with_insert: bool) -> Select[Any]:
    """One statement: take a create token from the owner (the one row of `owners`, if any)
    when both quotas also have room for `:size_bytes`, and then, `with_insert`, INSERT the
    image from what the UPDATE returned. Its one row (none: no owner) is what
    `read_create_charge` reads. Built once, with bind parameters (`create_parameters`), so a
    request pays neither building nor compiling it."""
    owner = owners.cte("key_owner")
    policy = (
        select(
            owner.c.owner,
            func.coalesce(OwnerLimits.create_rate_per_minute, parameter("create_rate")).label(
                "rate"
            ),
            func.coalesce(OwnerLimits.create_burst, parameter("create_burst")).label("burst"),
            func.coalesce(OwnerLimits.max_awaiting_upload, parameter("max_awaiting")).label(
                "max_awaiting"
            ),
            func.coalesce(OwnerLimits.max_stored_bytes, parameter("max_bytes", BigInteger)).label(
                "max_bytes"
            ),
        )
        .select_from(owner.outerjoin(OwnerLimits, OwnerLimits.owner == owner.c.owner))
        .cte("policy")
    )
    size_bytes = parameter("size_bytes", BigInteger)
    next_tat, allowed = gcra(OwnerUsage.creates_tat, policy.c.rate, policy.c.burst)
    spent = (
        update(OwnerUsage)
        .where(
            OwnerUsage.owner == policy.c.owner,
            allowed,
            OwnerUsage.awaiting_upload < policy.c.max_awaiting,
            OwnerUsage.stored_bytes + size_bytes <= policy.c.max_bytes,
        )
        .values(creates_tat=next_tat)
        .returning(OwnerUsage.owner, backlog_s(OwnerUsage.creates_tat).label("backlog_s"))
        .cte("spent")
    )
    usage = (
        select(
            OwnerUsage.owner,
            OwnerUsage.awaiting_upload,
            OwnerUsage.stored_bytes,
            backlog_s(OwnerUsage.creates_tat).label("backlog_s"),
        )
        .where(OwnerUsage.owner == policy.c.owner)
        .cte("usage")
    )
    columns: list[Any] = [
        policy,
        usage.c.owner.label("usage_owner"),
        usage.c.awaiting_upload,
        usage.c.stored_bytes,
        usage.c.backlog_s.label("backlog_before_s"),
        spent.c.backlog_s.label("backlog_after_s"),
    ]
    joined = policy.outerjoin(usage, true()).outerjoin(spent, true())
    if with_insert:
        row = select(
            parameter("image_id", Image.id.type),
            spent.c.owner,
            parameter("status", Image.status.type),
            parameter("filename", Image.filename.type),
            parameter("content_type", Image.content_type.type),
            size_bytes,
        )
        inserted = (
            insert(Image)
            .from_select(["id", "owner", "status", "filename", "content_type", "size_bytes"], row)
            .returning(Image.created_at, Image.updated_at)
            .cte("inserted")
        )
        columns += [inserted.c.created_at, inserted.c.updated_at]
        joined = joined.outerjoin(inserted, true())
    return select(*columns).select_from(joined)


def parameter(name: str, type_: Any = Integer) -> BindParameter[Any]:
    return bindparam(name, type_=type_)


def limit_parameters(limits: Limits) -> dict[str, int]:
    return {
        "create_rate": limits.create_rate_per_minute,
        "create_burst": limits.create_burst,
        "max_awaiting": limits.max_awaiting_upload,
        "max_bytes": limits.max_stored_bytes,
    }


def create_parameters(key: ParsedKey, image: Image, limits: Limits) -> dict[str, Any]:
    """The parameters of `CREATE_WITHIN_LIMITS` for `image`, made with `key`."""
    return {
        **key_parameters(key),
        **limit_parameters(limits),
        "image_id": image.id,
        "status": image.status,
        "filename": image.filename,
        "content_type": image.content_type,
        "size_bytes": image.size_bytes,
    }


# The plain create's statement: the key's owner, charged, then the INSERT.
CREATE_WITHIN_LIMITS = create_charge(ACTIVE_KEY_OWNER, with_insert=True)
# The charge alone, of a known `:charged_owner` (the create with an Idempotency-Key inserts the
# image itself). A parameter named as a column the UPDATE sets would be taken for its value.
CHARGE_CREATE = create_charge(
    select(parameter("charged_owner", String).label("owner")), with_insert=False
)


def read_create_charge(row: Row[Any], *, size_bytes: int) -> Rate:
    """The creates rate after a charged create; or the refusal, naming the quota or rate."""
    if row.backlog_after_s is not None:
        return Rate("creates", row.rate, row.burst, float(row.backlog_after_s))
    if row.usage_owner is None:
        raise UsageMissing(row.owner)
    rate = Rate("creates", row.rate, row.burst, float(row.backlog_before_s))
    if row.awaiting_upload >= row.max_awaiting:
        raise TooManyRequests(
            f"{row.awaiting_upload} images are awaiting upload, as many as this owner may have "
            f"at once ({row.max_awaiting}): upload or delete some first",
            code="awaiting_upload_quota_exceeded",
            limit="awaiting_upload",
            headers=rate.headers(),
        )
    if row.stored_bytes + size_bytes > row.max_bytes:
        raise TooManyRequests(
            f"{size_bytes} more bytes would take this owner over its storage quota: "
            f"{row.stored_bytes} of {row.max_bytes} bytes stored; delete images to free some",
            code="stored_bytes_quota_exceeded",
            limit="stored_bytes",
            headers=rate.headers(),
        )
    # Refused by the rate (or, racing another create, by a quota that filled meanwhile).
    raise rate.refusal(
        "create_rate_limited",
        f"more than {rate.per_minute} creates a minute ({rate.burst} at once): retry after "
        f"{rate.retry_after_s()} s",
    )


async def ensure_usage(connection: AsyncConnection | AsyncSession, owner: str) -> None:
    await connection.execute(
        upsert(OwnerUsage).values(owner=owner).on_conflict_do_nothing(index_elements=["owner"])
    )


async def charge_create(
    session: AsyncSession, *, owner: str, limits: Limits, size_bytes: int
) -> Rate:
    """Take a create token inside the caller's transaction (the create with an
    `Idempotency-Key`): its rollback gives the token back. TooManyRequests when refused."""
    parameters = {"charged_owner": owner, "size_bytes": size_bytes, **limit_parameters(limits)}
    try:
        row = (await session.execute(CHARGE_CREATE, parameters)).one()
        return read_create_charge(row, size_bytes=size_bytes)
    except UsageMissing:
        await ensure_usage(session, owner)
        row = (await session.execute(CHARGE_CREATE, parameters)).one()
        return read_create_charge(row, size_bytes=size_bytes)


def reprocess_statements() -> tuple[Update, Select[Any]]:
    """The reprocess charge of `:charged_owner`, and the read of its state after a refusal."""
    owner = parameter("charged_owner", String)
    per_minute = func.coalesce(
        select(OwnerLimits.reprocess_rate_per_minute)
        .where(OwnerLimits.owner == owner)
        .scalar_subquery(),
        parameter("reprocess_rate"),
    )
    next_tat, allowed = gcra(OwnerUsage.reprocesses_tat, per_minute, per_minute)
    charge = (
        update(OwnerUsage)
        .where(OwnerUsage.owner == owner, allowed)
        .values(reprocesses_tat=next_tat)
        .returning(per_minute, backlog_s(OwnerUsage.reprocesses_tat))
    )
    state = select(per_minute, backlog_s(OwnerUsage.reprocesses_tat)).where(
        OwnerUsage.owner == owner
    )
    return charge, state


CHARGE_REPROCESS, REPROCESS_STATE = reprocess_statements()


async def charge_reprocess(session: AsyncSession, *, owner: str, limits: Limits) -> Rate:
    """Take a reprocess token inside the caller's transaction (the one that queues the job).
    The owner has a usage row: it has an image."""
    parameters = {"charged_owner": owner, "reprocess_rate": limits.reprocess_rate_per_minute}
    charged = (await session.execute(CHARGE_REPROCESS, parameters)).one_or_none()
    if charged is not None:
        return Rate("reprocesses", charged[0], charged[0], float(charged[1]))
    state = (await session.execute(REPROCESS_STATE, parameters)).one()
    rate = Rate("reprocesses", state[0], state[0], float(state[1]))
    raise rate.refusal(
        "reprocess_rate_limited",
        f"more than {rate.per_minute} reprocesses a minute: retry after {rate.retry_after_s()} s",
    )
