"""Settings for the API process, read once at start-up from `PICFORGE_*` variables."""

from __future__ import annotations

from functools import cached_property
from urllib.parse import quote

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class AwsSettings(BaseSettings):
    """Where S3 and SQS live: AWS itself, or an emulator when `aws_endpoint_url` is set."""

    model_config = SettingsConfigDict(env_prefix="PICFORGE_", env_file=".env", extra="ignore")

    aws_region: str = "us-east-1"
    # An emulator locally; unset on AWS, where the SDK finds the endpoint and the task role.
    aws_endpoint_url: str | None = None
    # The endpoint as a browser sees it, when it differs from ours (compose: the host port).
    aws_public_endpoint_url: str | None = None
    uploads_bucket: str
    renditions_bucket: str


class DatabaseSettings(BaseSettings):
    """A full URL, or the parts of one (how ECS hands over the RDS-managed secret)."""

    model_config = SettingsConfigDict(env_prefix="PICFORGE_", env_file=".env", extra="ignore")

    database_url: str | None = None
    db_host: str | None = None
    db_port: int = 5432
    db_name: str = "picforge"
    db_user: str = "picforge"
    db_password: str = Field("", repr=False)
    # RDS is configured to refuse unencrypted connections; asyncpg then needs `require`.
    db_sslmode: str = "prefer"
    db_pool_size: int = Field(10, ge=1, le=100)

    @model_validator(mode="after")
    def _check_database_named(self) -> DatabaseSettings:
        if not self.database_url and not self.db_host:
            raise ValueError("set PICFORGE_DATABASE_URL, or PICFORGE_DB_HOST with its parts")
        return self

    @cached_property
    def sqlalchemy_url(self) -> str:
        url = self.database_url or (
            f"postgresql://{quote(self.db_user)}:{quote(self.db_password, safe='')}"
            f"@{self.db_host}:{self.db_port}/{quote(self.db_name)}?ssl={self.db_sslmode}"
        )
        for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url.removeprefix(prefix)
        raise ValueError("PICFORGE_DATABASE_URL must be a postgresql:// URL")


class ApiSettings(AwsSettings, DatabaseSettings):
    # Where `POST /v1/images/{id}/reprocess` sends its jobs: the worker's queue.
    queue_url: str
    presign_expires_s: int = Field(300, ge=30, le=3600)
    max_upload_bytes: int = Field(50 * MiB, ge=1)
    rendition_url_expires_s: int = Field(3600, ge=60, le=7 * 24 * 3600)
    # A CDN in front of the renditions bucket; rendition URLs are then plain URLs under it.
    public_base_url: str | None = None
    # The upload page at /demo: on in `make dev`, off in production unless asked for.
    demo_enabled: bool = False
    # A key the demo page offers to anyone who opens it: for a local stack only.
    demo_api_key: str | None = Field(None, repr=False)
