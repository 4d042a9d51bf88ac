"""The records: one row per image, one per rendition, one per API key, one per idempotent create,
and per owner its limits and usage.
The API owns these tables; the worker writes renditions and status through `worker.records`."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ImageStatus(StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"
    # Never uploaded before its ticket expired (plus a grace period): swept, see worker.sweep.
    EXPIRED = "expired"


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (
        CheckConstraint(
            "status IN ('awaiting_upload', 'processing', 'ready', 'failed', 'expired')",
            name="status",
        ),
        CheckConstraint("size_bytes > 0", name="size_bytes_positive"),
        # An owner's images newest first, and the keyset that pages through them.
        Index("ix_images_owner_created_at_id", "owner", "created_at", "id"),
        # The worker's periodic look for images left `processing` (`worker.abandoned`): few
        # rows, however large the table.
        Index(
            "ix_images_processing_updated_at",
            "updated_at",
            postgresql_where=text("status = 'processing'"),
        ),
        # The worker's sweep of images never uploaded (`worker.sweep`), likewise.
        Index(
            "ix_images_awaiting_upload_created_at",
            "created_at",
            postgresql_where=text("status = 'awaiting_upload'"),
        ),
    )
    # created_at and updated_at come back in the INSERT's RETURNING, not a second query.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 (SQLAlchemy reads it once)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Who created it: the owner of the API key. Every query of the API filters on it.
    owner: Mapped[str] = mapped_column(String(64))
    status: Mapped[ImageStatus] = mapped_column(String(32), default=ImageStatus.AWAITING_UPLOAD)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    # Placeholder a client can paint before the first rendition byte arrives.
    thumbhash: Mapped[str | None] = mapped_column(String(64))
    dominant_color: Mapped[str | None] = mapped_column(String(7))
    # The S3 version of the original the worker rendered, pinned by the first upload it saw:
    # a later upload under the same key is never rendered and is removed (`worker.handlers`).
    original_version_id: Mapped[str | None] = mapped_column(String(1024))
    # Random, per image, part of every rendition key: a rendition URL cannot be derived from
    # the image id (`service.storage.rendition_key`).
    rendition_token: Mapped[str] = mapped_column(
        String(32), server_default=text("replace(gen_random_uuid()::text, '-', '')")
    )
    # The S3 multipart upload the original is sent by, kept once it closes so a replayed
    # create answers with it: the multipart routes accept this upload id only, and only while
    # it is open (`service.multipart`); the sweep aborts it.
    multipart_upload_id: Mapped[str | None] = mapped_column(String(1024))
    # Every part but the last is this size: what the part URLs sign as their Content-Length.
    multipart_part_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # When the upload was completed, or aborted by the sweep; NULL while it is open.
    multipart_closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    # Set when the API queues a reprocess, cleared when the worker records its outcome: while
    # set (and recent), another reprocess request queues nothing (`service.images`).
    reprocess_queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    renditions: Mapped[list[Rendition]] = relationship(
        back_populates="image",
        lazy="selectin",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Rendition.width",
    )


class Rendition(Base):
    __tablename__ = "renditions"

    image_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(1024))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)

    image: Mapped[Image] = relationship(back_populates="renditions")


class ApiKey(Base):
    """A key is `pf_<id>_<secret>`; only a hash of the secret is kept, so the key is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    secret_sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IdempotentCreate(Base):
    """A `POST /v1/images` made with an `Idempotency-Key`: a retry finds the image it made."""

    __tablename__ = "idempotent_creates"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    # Deleting the image forgets the key: a retry after a delete makes a new image.
    image_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), index=True
    )
    # Keys expire (`PICFORGE_IDEMPOTENCY_KEY_TTL_S`); the worker's sweep deletes them.
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


class OwnerLimits(Base):
    """An owner's overrides of the configured limits (`picforge limits`); NULL keeps the
    default (`service.limits`)."""

    __tablename__ = "owner_limits"
    __table_args__ = (
        CheckConstraint(
            "create_rate_per_minute > 0 AND create_burst > 0 AND reprocess_rate_per_minute > 0 "
            "AND max_awaiting_upload >= 0 AND max_stored_bytes >= 0",
            name="positive",
        ),
    )

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    create_rate_per_minute: Mapped[int | None] = mapped_column(Integer)
    create_burst: Mapped[int | None] = mapped_column(Integer)
    reprocess_rate_per_minute: Mapped[int | None] = mapped_column(Integer)
    max_awaiting_upload: Mapped[int | None] = mapped_column(Integer)
    max_stored_bytes: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OwnerUsage(Base):
    """What an owner has used, shared by every API process: each rate limit's GCRA state (the
    theoretical arrival time of the next request) and the quotas' counts, which triggers on
    `images` and `renditions` keep (migration 0009)."""

    __tablename__ = "owner_usage"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    creates_tat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reprocesses_tat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    awaiting_upload: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    stored_bytes: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
