"""service/database_login.py against a PostgreSQL that asks for passwords and serves TLS."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg  # type: ignore[import-untyped]
import boto3
import pytest
from sqlalchemy import text

from devstack.emulator import Emulator
from service.config import DatabaseSettings
from service.database_login import DatabaseLoginRefused, DatabaseSecretUnreadable, Login
from service.db import create_engine
from service.errors import DependencyUnavailable, domain_error
from tests.secure_postgres import ADDRESS, OTHER_ADDRESS, SecurePostgres


@pytest.fixture(scope="module")
def secure_postgres() -> Iterator[SecurePostgres]:
    with SecurePostgres() as server:
        yield server


def settings_for(server: SecurePostgres, **overrides: Any) -> DatabaseSettings:
    values: dict[str, Any] = {
        "db_host": ADDRESS,
        "db_port": server.port,
        "db_name": "postgres",
        "db_user": "postgres",
        "db_password": server.password,
        "db_sslmode": "verify-full",
        "db_sslrootcert": str(server.certificates.ca),
    }
    return DatabaseSettings(**{**values, **overrides})


async def login_and_ask_tls(settings: DatabaseSettings) -> bool:
    connection = await Login(settings).connect()
    try:
        encrypted: bool = await connection.fetchval(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
        return encrypted
    finally:
        await connection.close()


async def test_login_verify_full_accepts_the_server_its_ca_signed_for_this_host(
    secure_postgres: SecurePostgres,
) -> None:
    assert await login_and_ask_tls(settings_for(secure_postgres)) is True


async def test_login_verify_full_refuses_a_host_the_certificate_does_not_name(
    secure_postgres: SecurePostgres,
) -> None:
    settings = settings_for(secure_postgres, db_host=OTHER_ADDRESS)
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        await Login(settings).connect()
    # verify-ca checks the signature only: the same server is accepted under another name.
    assert await login_and_ask_tls(
        settings_for(secure_postgres, db_host=OTHER_ADDRESS, db_sslmode="verify-ca")
    )


async def test_login_verify_ca_refuses_a_certificate_of_another_ca(
    secure_postgres: SecurePostgres,
) -> None:
    settings = settings_for(
        secure_postgres,
        db_sslmode="verify-ca",
        db_sslrootcert=str(secure_postgres.certificates.other_ca),
    )
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        await Login(settings).connect()


def test_settings_refuse_verify_full_without_a_ca_bundle() -> None:
    with pytest.raises(ValueError, match="needs PICFORGE_DB_SSLROOTCERT"):
        DatabaseSettings(db_host="db", db_sslmode="verify-full")


def test_settings_copied_with_another_database_name_that_one() -> None:
    settings = DatabaseSettings(database_url="postgresql://owner@db/picforge")
    assert settings.sqlalchemy_url == "postgresql+asyncpg://owner@db/picforge"

    copied = settings.model_copy(update={"database_url": "postgresql://picforge_app@db/picforge"})

    assert copied.sqlalchemy_url == "postgresql+asyncpg://picforge_app@db/picforge"


async def test_login_refused_is_a_connection_error_without_the_password(
    secure_postgres: SecurePostgres,
) -> None:
    wrong = "not-the-password-" + uuid.uuid4().hex
    settings = settings_for(secure_postgres, db_password=wrong)
    with pytest.raises(DatabaseLoginRefused) as refused:
        await Login(settings).connect()
    assert isinstance(refused.value, ConnectionError)
    assert "28P01" in str(refused.value) and wrong not in str(refused.value)


async def test_engine_raises_a_refused_login_as_a_connection_error(
    secure_postgres: SecurePostgres,
) -> None:
    """What the API maps to 503 and the worker to a transient failure."""
    engine = create_engine(settings_for(secure_postgres, db_password="wrong"))
    try:
        with pytest.raises(DatabaseLoginRefused):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


@pytest.fixture
async def rotating_role(secure_postgres: SecurePostgres) -> Any:
    """A login role with a password, dropped afterwards."""
    role = f"rotating_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(secure_postgres.url(), ssl="require")
    await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'first-password'")
    yield role, admin
    await admin.execute(f"DROP ROLE {role}")
    await admin.close()


async def test_login_from_a_secret_follows_its_rotation_without_a_restart(
    secure_postgres: SecurePostgres, emulator: Emulator, rotating_role: Any
) -> None:
    role, admin = rotating_role
    secrets = boto3.client("secretsmanager", endpoint_url=emulator.url, region_name="us-east-1")
    arn = secrets.create_secret(
        Name=f"db-{role}", SecretString=json.dumps({"username": role, "password": "first-password"})
    )["ARN"]
    login = Login(
        settings_for(
            secure_postgres,
            db_user=role,
            db_password="",
            db_auth="secret",
            db_secret_arn=arn,
            aws_endpoint_url=emulator.url,
        )
    )
    await (await login.connect()).close()

    # A rotation: the server and the secret change together, the process keeps running.
    await admin.execute(f"ALTER ROLE {role} PASSWORD 'second-password'")
    secrets.put_secret_value(
        SecretId=arn, SecretString=json.dumps({"username": role, "password": "second-password"})
    )
    connection = await login.connect()  # the cached password fails; the secret is read again
    assert await connection.fetchval("SELECT current_user") == role
    await connection.close()

    # Revoked with nothing new in the secret: refused, as a connection error.
    await admin.execute(f"ALTER ROLE {role} PASSWORD NULL")
    with pytest.raises(DatabaseLoginRefused):
        await login.connect()


async def test_login_gives_up_on_a_silent_secrets_manager_as_on_a_database_out_of_reach(
    silent_endpoint: str,
) -> None:
    """Within the login's own timeout, where botocore alone waits 60 s a read, three times."""
    settings = DatabaseSettings(
        db_host=ADDRESS,
        db_auth="secret",
        db_secret_arn="arn:aws:secretsmanager:us-east-1:000000000000:secret:picforge-db",
        db_connect_timeout_s=0.5,
        aws_endpoint_url=silent_endpoint,
    )
    started = time.monotonic()
    with pytest.raises(DatabaseSecretUnreadable) as unreadable:
        await Login(settings).connect()

    assert time.monotonic() - started < 5
    assert "picforge-db" in str(unreadable.value)
    assert isinstance(unreadable.value, ConnectionError)  # the worker waits for the database
    assert isinstance(domain_error(unreadable.value), DependencyUnavailable)  # the API: 503


async def test_login_from_a_secret_without_a_password_says_so(emulator: Emulator) -> None:
    secrets = boto3.client("secretsmanager", endpoint_url=emulator.url, region_name="us-east-1")
    arn = secrets.create_secret(
        Name=f"db-{uuid.uuid4().hex[:8]}", SecretString=json.dumps({"username": "picforge"})
    )["ARN"]
    settings = DatabaseSettings(
        db_host=ADDRESS, db_auth="secret", db_secret_arn=arn, aws_endpoint_url=emulator.url
    )
    with pytest.raises(DatabaseSecretUnreadable, match="has no `password`"):
        await Login(settings).connect()


async def test_login_iam_signs_a_new_token_for_each_connection(monkeypatch: Any) -> None:
    """No RDS here to accept a token: what is checked is the token each connection would
    present (signed for this host, port and user, valid 15 minutes), never one kept."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")
    settings = DatabaseSettings(
        db_host="db.example.eu-west-1.rds.amazonaws.com",
        db_user="picforge_app",
        db_auth="iam",
        aws_region="eu-west-1",
    )
    login = Login(settings)
    presented: list[str] = []

    async def capture(password: str | None) -> Any:
        assert password is not None
        presented.append(password)
        return None

    monkeypatch.setattr(login, "_connect", capture)
    await login.connect()
    await asyncio.sleep(1.1)  # the signature covers the time, to the second
    await login.connect()

    first, second = presented
    assert first != second
    parts = urlsplit("https://" + first)
    assert parts.netloc == "db.example.eu-west-1.rds.amazonaws.com:5432"
    query = parse_qs(parts.query)
    assert query["Action"] == ["connect"] and query["DBUser"] == ["picforge_app"]
    assert query["X-Amz-Expires"] == ["900"]
    assert "/eu-west-1/rds-db/aws4_request" in query["X-Amz-Credential"][0]


async def test_login_iam_signs_every_token_with_one_client(monkeypatch: Any) -> None:
    """Making a client loads the RDS model, 65-115 ms of CPU: a pool filling again after a
    failover must not pay that for each connection. A token from a kept client is 0.1 ms."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")
    settings = DatabaseSettings(
        db_host="db.example.eu-west-1.rds.amazonaws.com", db_auth="iam", aws_region="eu-west-1"
    )
    login = Login(settings)

    async def present(password: str | None) -> Any:
        return None

    monkeypatch.setattr(login, "_connect", present)
    await login.connect()
    started = time.process_time()
    for _ in range(10):
        await login.connect()

    assert (time.process_time() - started) / 10 < 0.02
