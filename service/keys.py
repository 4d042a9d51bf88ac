"""API keys: `pf_<key-id>_<secret>`, shown once, kept only as a SHA-256 of the secret.

A plain SHA-256 is the right hash here, not a slow KDF (bcrypt, scrypt, argon2): those exist to
make guessing a *low-entropy* password from its hash expensive. The secret is 256 bits from the
OS's CSPRNG, so a stolen hash cannot be reversed by guessing at any speed, and a slow hash would
only cost every request milliseconds. The key id is public and selects the row; then the
secret's hash is compared, never the secret, so response timing says nothing about the secret
(a timing difference could at most tell how many leading bytes of a SHA-256 matched, and no
attacker can steer those): PostgreSQL compares it, in the same statement.

Every request is authenticated by one query, `ACTIVE_KEY_OWNER`: alone (`require_owner`, the
dependency every `/v1` route but the create uses) or as the source of a plain create's INSERT
(`service.creation`), which so checks the key and writes the row in one round trip. It is built
once, and each request binds its key (`key_parameters`): building a statement from the model
costs more CPU than PostgreSQL takes to answer it.

The CLI's use-cases (create, ensure, revoke) commit here, the way `service.images` does for
images; the API only ever reads keys.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service.errors import Unauthorized
from service.models import ApiKey

Sessions = async_sessionmaker[AsyncSession]

PREFIX = "pf"
KEY_ID_BYTES = 8  # 16 hex characters: public, only needs to be unique
SECRET_BYTES = 32  # 256 bits
KEY_PATTERN = re.compile(r"^pf_(?P<id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43,})$")
OWNER_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class InvalidKey(ValueError):
    """A key that is not of the form `pf_<16 hex digits>_<at least 43 base64url characters>`."""


class KeyConflict(ValueError):
    """The key id is already taken by a different key or owner."""


@dataclass(frozen=True)
class ParsedKey:
    key_id: str
    secret: str


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    owner: str
    created_at: datetime
    revoked_at: datetime | None


def generate_key() -> str:
    return f"{PREFIX}_{secrets.token_hex(KEY_ID_BYTES)}_{secrets.token_urlsafe(SECRET_BYTES)}"


def parse_key(plaintext: str) -> ParsedKey:
    match = KEY_PATTERN.fullmatch(plaintext)
    if match is None:
        raise InvalidKey(
            "an API key looks like pf_<16 hex digits>_<at least 43 base64url characters>"
        )
    return ParsedKey(key_id=match["id"], secret=match["secret"])


def check_owner(owner: str) -> str:
    if not OWNER_PATTERN.fullmatch(owner):
        raise ValueError(
            f"owner {owner!r}: use 1-64 of a-z 0-9 . _ - starting with a letter or digit"
        )
    return owner


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


UNKNOWN_KEY = "the API key is unknown or has been revoked"


# The owner of the key bound by `key_parameters`, if the key is active: no row for an unknown
# or revoked key, or a wrong secret.
ACTIVE_KEY_OWNER: Final = select(ApiKey.owner).where(
    ApiKey.id == bindparam("key_id", type_=ApiKey.id.type),
    ApiKey.secret_sha256 == bindparam("secret_sha256", type_=ApiKey.secret_sha256.type),
    ApiKey.revoked_at.is_(None),
)


def key_parameters(key: ParsedKey) -> dict[str, str | bytes]:
    return {"key_id": key.key_id, "secret_sha256": hash_secret(key.secret)}


async def authenticate(statements: AsyncEngine, key: ParsedKey) -> str | None:
    """The owner of the key, or None for an unknown or revoked one. `statements` runs the lone
    SELECT in autocommit (`service.db.autocommit`): one round trip."""
    async with statements.connect() as connection:
        owner: str | None = await connection.scalar(ACTIVE_KEY_OWNER, key_parameters(key))
    return owner


async def require_owner(statements: AsyncEngine, key: ParsedKey) -> str:
    """The owner of the key; Unauthorized for an unknown or revoked one."""
    owner = await authenticate(statements, key)
    if owner is None:
        raise Unauthorized(UNKNOWN_KEY)
    return owner


async def create_key(sessions: async_sessionmaker[AsyncSession], *, owner: str) -> str:
    """A new key for `owner`; the plaintext is returned once and stored nowhere."""
    plaintext = generate_key()
    await ensure_key(sessions, owner=owner, plaintext=plaintext)
    return plaintext


async def ensure_key(
    sessions: async_sessionmaker[AsyncSession], *, owner: str, plaintext: str
) -> None:
    """Make `plaintext` a valid key of `owner`, idempotently (`make dev` calls it at every start
    with a fixed key). A revoked key stays revoked; an id held by another key or owner is a
    `KeyConflict`."""
    check_owner(owner)
    parsed = parse_key(plaintext)
    digest = hash_secret(parsed.secret)
    async with sessions.begin() as session:
        await session.execute(
            insert(ApiKey)
            .values(id=parsed.key_id, owner=owner, secret_sha256=digest)
            .on_conflict_do_nothing(index_elements=[ApiKey.id])
        )
        stored = await session.get(ApiKey, parsed.key_id)
        assert stored is not None
        if stored.owner != owner or not hmac.compare_digest(stored.secret_sha256, digest):
            raise KeyConflict(f"key id {parsed.key_id} already belongs to another key")


async def revoke_key(sessions: async_sessionmaker[AsyncSession], *, key_id: str) -> bool:
    """Refuse the key from now on; False if there is no such key. Revoking twice is fine."""
    async with sessions.begin() as session:
        revoked = await session.scalar(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(revoked_at=func.coalesce(ApiKey.revoked_at, func.now()))
            .returning(ApiKey.id)
        )
        return revoked is not None


async def list_keys(sessions: async_sessionmaker[AsyncSession]) -> list[KeyInfo]:
    async with sessions() as session:
        keys = await session.scalars(select(ApiKey).order_by(ApiKey.owner, ApiKey.created_at))
        return [
            KeyInfo(
                key_id=key.id, owner=key.owner, created_at=key.created_at, revoked_at=key.revoked_at
            )
            for key in keys
        ]
