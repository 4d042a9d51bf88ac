"""Creating an image: the declared upload checked, the row inserted (within the owner's limits,
and once per Idempotency-Key when one is given: `service.idempotency`), and the ticket to
upload the original with.

Like `service.images`, a use-case module: it takes its collaborators explicitly, commits, and
returns records (`service.models`), never HTTP shapes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Final, Literal

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service.charges import (
    CREATE_WITHIN_LIMITS,
    UsageMissing,
    create_parameters,
    ensure_usage,
    read_create_charge,
)
from service.content_types import ACCEPTED_CONTENT_TYPES
from service.errors import (
    FileTooLarge,
    Unauthorized,
    UnsupportedContentType,
)
from service.idempotency import create_image_idempotently, forget_expired_idempotency_key
from service.keys import (
    ACTIVE_KEY_OWNER,
    UNKNOWN_KEY,
    ParsedKey,
    key_parameters,
    require_owner,
)
from service.limits import Limits, Rate
from service.models import Image, ImageStatus
from service.multipart import MultipartTicket, MultipartUploads, open_upload
from service.storage import (
    PostPolicySigner,
    UploadTicket,
    original_key,
    presign_put,
    presign_upload,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


UploadMethod = Literal["post", "put", "multipart"]


@dataclass(frozen=True)
class Upload:
    """The upload a client declared it is about to make."""

    filename: str
    content_type: str
    size_bytes: int
    # None: `multipart` from the configured threshold on, `post` below it.
    upload_method: UploadMethod | None = None

    def resolved(self, *, multipart_threshold_bytes: int) -> Upload:
        """The declaration with its method decided, before it is fingerprinted."""
        if self.upload_method is not None:
            return self
        large = self.size_bytes >= multipart_threshold_bytes
        return replace(self, upload_method="multipart" if large else "post")


@dataclass(frozen=True)
class CreatedImage:
    image: Image
    ticket: UploadTicket | MultipartTicket
    # True when an earlier request with the same Idempotency-Key made the image.
    replayed: bool
    # The owner's creates limit after this one, for its headers; None with limits off.
    rate: Rate | None = None


@dataclass(frozen=True)
class UploadTickets:
    """Signs the ticket a client sends an original with, straight to S3."""

    post_signer: PostPolicySigner
    put_signer: S3Client
    bucket: str
    expires_s: int
    multipart: MultipartUploads
    multipart_threshold_bytes: int

    async def sign(
        self, image_id: uuid.UUID, upload: Upload, *, expires_s: int | None = None
    ) -> UploadTicket:
        """A ticket valid `expires_s` seconds (default: the configured lifetime)."""
        expires_s = expires_s or self.expires_s
        presign = (
            partial(presign_put, self.put_signer)
            if upload.upload_method == "put"
            else partial(presign_upload, self.post_signer)
        )
        return await presign(
            bucket=self.bucket,
            key=original_key(image_id),
            content_type=upload.content_type,
            size_bytes=upload.size_bytes,
            expires_s=expires_s,
        )


def check_upload_allowed(upload: Upload, *, max_upload_bytes: int) -> None:
    if upload.content_type not in ACCEPTED_CONTENT_TYPES:
        accepted = ", ".join(sorted(ACCEPTED_CONTENT_TYPES))
        raise UnsupportedContentType(
            f"{upload.content_type!r} is not an accepted image type; accepted: {accepted}"
        )
    if upload.size_bytes > max_upload_bytes:
        raise FileTooLarge(
            f"{upload.size_bytes} bytes is over the limit of {max_upload_bytes} bytes"
        )


def upload_fingerprint(upload: Upload) -> bytes:
    """The same declaration, however its JSON was spelled (key order, defaults), hashes the same."""
    canonical = json.dumps(asdict(upload), sort_keys=True)
    return hashlib.sha256(canonical.encode()).digest()


def new_image(*, owner: str, upload: Upload) -> Image:
    return Image(
        id=uuid.uuid4(),
        owner=owner,
        status=ImageStatus.AWAITING_UPLOAD,
        filename=upload.filename,
        content_type=upload.content_type,
        size_bytes=upload.size_bytes,
        renditions=[],
    )


async def create_image(
    statements: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    tickets: UploadTickets,
    *,
    max_upload_bytes: int,
    key: ParsedKey,
    upload: Upload,
    idempotency_key: str | None = None,
    idempotency_key_ttl_s: int = 24 * 3600,
    limits: Limits | None = None,
) -> CreatedImage:
    """A new image for the owner of `key`, and the ticket to upload it with. Unauthorized for
    an unknown or revoked key.

    The upload is checked first, so a refused one costs no INSERT; but only the holder of a
    valid key learns why it was refused. A multipart upload is opened once the image exists
    (`service.multipart.open_upload`); a replay answers with the same upload."""
    upload = upload.resolved(multipart_threshold_bytes=tickets.multipart_threshold_bytes)
    try:
        check_upload_allowed(upload, max_upload_bytes=max_upload_bytes)
    except (UnsupportedContentType, FileTooLarge):
        await require_owner(statements, key)
        raise
    rate, replayed = None, False
    if idempotency_key is not None:
        owner = await require_owner(statements, key)
        async with sessions() as session:
            await forget_expired_idempotency_key(
                session, owner=owner, key=idempotency_key, ttl_s=idempotency_key_ttl_s
            )
            image, replayed, rate = await create_image_idempotently(
                session,
                image=new_image(owner=owner, upload=upload),
                fingerprint=upload_fingerprint(upload),
                idempotency_key=idempotency_key,
                ttl_s=idempotency_key_ttl_s,
                limits=limits,
            )
    elif limits is None:
        image = await insert_image(statements, key=key, upload=upload)
    else:
        image, rate = await insert_image_within_limits(
            statements, key=key, upload=upload, limits=limits
        )
    ticket: UploadTicket | MultipartTicket
    if upload.upload_method == "multipart":
        ticket = await open_upload(statements, tickets.multipart, image)
    else:
        lifetime_s = replayed_ticket_lifetime_s(image, tickets) if replayed else None
        ticket = await tickets.sign(image.id, upload, expires_s=lifetime_s)
    return CreatedImage(image=image, ticket=ticket, replayed=replayed, rate=rate)


def replayed_ticket_lifetime_s(image: Image, tickets: UploadTickets) -> int:
    """A replayed create's ticket expires when the first one did, never later: an image is
    uploaded within one ticket's lifetime of its creation, or it expires (`worker.sweep`).
    Past that, a replay still gets a ticket, valid one second."""
    deadline = image.created_at + timedelta(seconds=tickets.expires_s)
    remaining = (deadline - datetime.now(UTC)).total_seconds()
    return max(1, min(tickets.expires_s, int(remaining)))


# A plain create's INSERT, whose row comes from the key's own query (`keys.ACTIVE_KEY_OWNER`),
# so an unknown or revoked key inserts nothing. Built once; `insert_image` binds each request's
# values.
_INSERTED_COLUMNS: Final = ("id", "status", "filename", "content_type", "size_bytes")
_ACTIVE_OWNER: Final = ACTIVE_KEY_OWNER.subquery()
INSERT_FROM_KEY: Final = (
    insert(Image)
    .from_select(
        ["owner", *_INSERTED_COLUMNS],
        select(
            _ACTIVE_OWNER.c.owner,
            *(bindparam(name, type_=Image.__table__.c[name].type) for name in _INSERTED_COLUMNS),
        ),
    )
    .returning(Image.owner, Image.created_at, Image.updated_at)
)


async def insert_image(statements: AsyncEngine, *, key: ParsedKey, upload: Upload) -> Image:
    """A plain create: one INSERT (`INSERT_FROM_KEY`), in autocommit. One round trip."""
    image = new_image(owner="", upload=upload)
    values = {name: getattr(image, name) for name in _INSERTED_COLUMNS}
    async with statements.connect() as connection:
        inserted = (
            await connection.execute(INSERT_FROM_KEY, {**values, **key_parameters(key)})
        ).one_or_none()
    if inserted is None:
        raise Unauthorized(UNKNOWN_KEY)
    image.owner, image.created_at, image.updated_at = inserted
    return image


async def insert_image_within_limits(
    statements: AsyncEngine, *, key: ParsedKey, upload: Upload, limits: Limits
) -> tuple[Image, Rate]:
    """`insert_image`, guarded by the owner's limits in the same statement
    (`service.charges.CREATE_WITHIN_LIMITS`): still one round trip, refused or not; two the
    first time an owner creates anything."""
    image = new_image(owner="", upload=upload)
    parameters = create_parameters(key, image, limits)
    async with statements.connect() as connection:
        row = (await connection.execute(CREATE_WITHIN_LIMITS, parameters)).one_or_none()
        if row is None:
            raise Unauthorized(UNKNOWN_KEY)
        try:
            rate = read_create_charge(row, size_bytes=upload.size_bytes)
        except UsageMissing:
            await ensure_usage(connection, row.owner)
            row = (await connection.execute(CREATE_WITHIN_LIMITS, parameters)).one()
            rate = read_create_charge(row, size_bytes=upload.size_bytes)
    image.owner, image.created_at, image.updated_at = row.owner, row.created_at, row.updated_at
    return image, rate
