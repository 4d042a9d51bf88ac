"""How each new database connection logs in: its password, and how it checks the server.

The engine's pool calls `Login.connect` for every connection it opens, so what a connection
presents is decided at that moment, never at start-up:

- `password` (local runs, migrations): the password in the URL or `PICFORGE_DB_PASSWORD`.
- `iam` (the API and the worker on AWS): an RDS IAM authentication token, signed with the
  task role's credentials for this host, port and user. A token is valid for 15 minutes and is
  only checked at login, so a new one per connection never expires under a running pool, and
  there is no password to rotate at all.
- `secret`: the `password` of a Secrets Manager secret (an RDS-managed or rotated one). It is
  read once and kept; when the server refuses it, the secret is read again and, if it changed
  (a rotation), the login is retried at once with the new password.

A login the server refuses raises `DatabaseLoginRefused`, and a secret that cannot be read
(Secrets Manager unreachable or refusing, or a secret without a password) raises
`DatabaseSecretUnreadable`: both are `ConnectionError`s, so to the API the database is
unavailable (503 `dependency_unavailable`) and to the worker it is out of reach, exactly as
with a refused socket. The password or token never appears in the error.

TLS: `verify-ca` and `verify-full` check the server's certificate against
`PICFORGE_DB_SSLROOTCERT` (RDS's CA bundle); `verify-full` also checks the host name. The other
libpq modes are passed to asyncpg as they are.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
import botocore.session
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.engine import make_url

from service.aws import secrets_manager_client
from service.config import DatabaseSettings

log = logging.getLogger(__name__)

Connect = Callable[[], Awaitable[asyncpg.Connection]]


class DatabaseLoginRefused(ConnectionError):
    """PostgreSQL refused the credentials (a revoked or rotated password, an expired token)."""


class DatabaseNoAnswer(TimeoutError):
    """PostgreSQL did not answer in time: a login, or a statement on a connection with a bound
    (`command_timeout_s`). Says which bound ran out, where asyncpg's own says nothing."""


class DatabaseSecretUnreadable(ConnectionError):
    """The secret holding the database's password could not be read, or holds none."""


def ssl_option(settings: DatabaseSettings) -> ssl.SSLContext | str:
    """What asyncpg's `ssl` takes for the configured mode."""
    if not settings.db_sslmode.startswith("verify-"):
        return settings.db_sslmode
    context = ssl.create_default_context(cafile=settings.db_sslrootcert)
    context.check_hostname = settings.db_sslmode == "verify-full"
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class Login:
    """Opens one connection as `settings` say, with the credentials current at that moment;
    on it, no statement's answer is waited for longer than `command_timeout_s` (None: as long
    as it takes)."""

    def __init__(self, settings: DatabaseSettings, command_timeout_s: float | None = None) -> None:
        url = make_url(settings.sqlalchemy_url)
        # What SQLAlchemy's asyncpg dialect would pass to asyncpg.connect for this URL.
        self._kwargs: dict[str, Any] = {
            **url.translate_connect_args(username="user", database="database"),
            **url.query,
        }
        if settings.db_sslmode.startswith("verify-"):
            # Otherwise the URL's own `ssl` (built from PICFORGE_DB_SSLMODE) stands.
            self._kwargs["ssl"] = ssl_option(settings)
        self._settings = settings
        self._command_timeout_s = command_timeout_s
        self._secret_password: str | None = None
        self._token_signer: Any = None
        self._token_signer_made = threading.Lock()  # logins sign in threads, side by side

    @property
    def user(self) -> str:
        return str(self._kwargs.get("user", ""))

    async def connect(self) -> asyncpg.Connection:
        password = await self._password()
        try:
            return await self._connect(password)
        except asyncpg.InvalidAuthorizationSpecificationError as refused:
            error = refused
        if self._settings.db_auth == "secret":
            self._secret_password = None  # read it again: it may have been rotated
            renewed = await self._password()
            if renewed != password:
                log.info("database login: the secret changed; logging in with the new one")
                try:
                    return await self._connect(renewed)
                except asyncpg.InvalidAuthorizationSpecificationError as refused:
                    error = refused
        log.warning("database login refused for user %s: %s", self.user, type(error).__name__)
        raise DatabaseLoginRefused(
            f"PostgreSQL refused the login of {self.user} (SQLSTATE {error.sqlstate})"
        ) from None

    async def _connect(self, password: str | None) -> asyncpg.Connection:
        kwargs = dict(self._kwargs)
        if password is not None:
            kwargs["password"] = password
        try:
            return await asyncpg.connect(
                **kwargs,
                timeout=self._settings.db_connect_timeout_s,
                command_timeout=self._command_timeout_s,
            )
        except TimeoutError:
            raise DatabaseNoAnswer(
                f"PostgreSQL did not answer the login of {self.user} within "
                f"{self._settings.db_connect_timeout_s:g} s (PICFORGE_DB_CONNECT_TIMEOUT_S)"
            ) from None

    async def _password(self) -> str | None:
        if self._settings.db_auth == "iam":
            return await asyncio.to_thread(self._iam_token)
        if self._settings.db_auth == "secret":
            if self._secret_password is None:
                self._secret_password = await self._read_secret()
            return self._secret_password
        return None  # the URL's own

    def _iam_token(self) -> str:
        # Signing is local (no call to AWS); the task role's credentials are fetched and
        # refreshed by the client's provider chain. One client for every login: making one
        # loads the RDS model, 65-115 ms of CPU, where a token from it costs 0.1 ms.
        with self._token_signer_made:
            if self._token_signer is None:
                self._token_signer = botocore.session.get_session().create_client(
                    "rds", region_name=self._settings.aws_region
                )
        token: str = self._token_signer.generate_db_auth_token(
            DBHostname=str(self._kwargs["host"]),
            Port=int(self._kwargs.get("port") or 5432),
            DBUsername=self.user,
            Region=self._settings.aws_region,
        )
        return token

    async def _read_secret(self) -> str:
        arn = self._settings.db_secret_arn
        try:
            # The whole read, retries included, takes no longer than a login may.
            async with asyncio.timeout(self._settings.db_connect_timeout_s):
                async with secrets_manager_client(self._settings) as secrets:
                    value = await secrets.get_secret_value(SecretId=arn)
        except (BotoCoreError, ClientError, TimeoutError) as exc:
            log.warning("database login: secret %s not read: %s", arn, type(exc).__name__)
            raise DatabaseSecretUnreadable(
                f"the database's secret {arn} could not be read ({type(exc).__name__})"
            ) from exc
        text = value.get("SecretString")
        if not isinstance(text, str):
            raise DatabaseSecretUnreadable(f"the database's secret {arn} holds no text")
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            return text  # a plain-text secret is the password itself
        if not isinstance(document, dict):
            return text
        password = document.get("password")
        if not isinstance(password, str):
            raise DatabaseSecretUnreadable(f"the database's secret {arn} has no `password`")
        return password


def engine_options(
    settings: DatabaseSettings, command_timeout_s: float | None = None
) -> dict[str, Any]:
    """`create_async_engine` keyword arguments that make every connection log in through
    `Login`, whatever the mode: a refused login is then a `DatabaseLoginRefused` everywhere."""
    return {"async_creator": Login(settings, command_timeout_s).connect}
