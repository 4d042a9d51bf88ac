"""Settings for the API process, read once at start-up from `PICFORGE_*` variables."""

from __future__ import annotations

from typing import Final, Literal
from urllib.parse import quote

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024
GiB = 1024 * MiB


class AwsSettings(BaseSettings):
    """Where S3 and SQS live: AWS itself, or an emulator when `aws_endpoint_url` is set."""

    model_config = SettingsConfigDict(env_prefix="PICFORGE_", env_file=".env", extra="ignore")

    aws_region: str = "us-east-1"
    # An emulator locally; unset on AWS, where the SDK finds the endpoint and the task role.
    aws_endpoint_url: str | None = None
    # The endpoint as a browser sees it, when it differs from ours (compose: the host port).
    aws_public_endpoint_url: str | None = None
    # How long an AWS call waits to connect, and for each read, before the SDK's retries (3
    # attempts) take over. botocore's own default is 60 s each: an endpoint that stopped
    # answering would hold an API request past the load balancer's idle timeout.
    aws_connect_timeout_s: float = Field(3.0, gt=0, le=60)
    aws_read_timeout_s: float = Field(10.0, gt=0, le=120)
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
    # How each new connection logs in (service/database_login.py): `password` is the one in the
    # URL or PICFORGE_DB_PASSWORD; `iam` a fresh RDS IAM token per connection; `secret` the
    # `password` of the Secrets Manager secret PICFORGE_DB_SECRET_ARN, read again after a failed
    # login. The last two survive a rotation without a restart.
    db_auth: Literal["password", "iam", "secret"] = "password"
    db_secret_arn: str | None = None
    # A connection attempt to an unreachable server fails this soon instead of after asyncpg's
    # 60 s: a request waiting on it is better answered 503 by then. Reading the password from
    # Secrets Manager (`secret`) is given as long again.
    db_connect_timeout_s: float = Field(10.0, gt=0, le=60)
    # libpq's modes; `verify-full` checks the certificate against PICFORGE_DB_SSLROOTCERT (RDS's
    # CA bundle) and the host name. Local runs keep `prefer`.
    db_sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = (
        "prefer"
    )
    db_sslrootcert: str | None = None
    # The most connections a process's pool opens, each kept once open; infra/ counts them
    # against the database's max_connections.
    db_pool_size: int = Field(20, ge=1, le=100)
    # Where IAM tokens are signed for and Secrets Manager is; the same settings as AwsSettings'.
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None

    @model_validator(mode="after")
    def _check_database_named(self) -> DatabaseSettings:
        if not self.database_url and not self.db_host:
            raise ValueError("set PICFORGE_DATABASE_URL, or PICFORGE_DB_HOST with its parts")
        if self.db_auth == "secret" and not self.db_secret_arn:
            raise ValueError("PICFORGE_DB_AUTH=secret needs PICFORGE_DB_SECRET_ARN")
        if self.db_sslmode.startswith("verify-") and not self.db_sslrootcert:
            raise ValueError(f"PICFORGE_DB_SSLMODE={self.db_sslmode} needs PICFORGE_DB_SSLROOTCERT")
        return self

    @property  # not cached: a copy with another database (`model_copy`) must name that one
    def sqlalchemy_url(self) -> str:
        url = self.database_url or (
            f"postgresql://{quote(self.db_user)}:{quote(self.db_password, safe='')}"
            f"@{self.db_host}:{self.db_port}/{quote(self.db_name)}?ssl={self.db_sslmode}"
        )
        for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url.removeprefix(prefix)
        raise ValueError("PICFORGE_DATABASE_URL must be a postgresql:// URL")


class LimitSettings(BaseSettings):
    """Each owner's fair share (`service.limits`), unless `picforge limits set` overrides it."""

    model_config = SettingsConfigDict(env_prefix="PICFORGE_", env_file=".env", extra="ignore")

    # Off: no limit is checked (the counts are kept all the same, by the database).
    limits_enabled: bool = True
    create_rate_per_minute: int = Field(120, ge=1)
    # Creates an idle owner may make at once, before the rate applies.
    create_burst: int = Field(60, ge=1)
    # Reprocesses that queue a render; one that coalesces (service.images) is free.
    reprocess_rate_per_minute: int = Field(30, ge=1)
    max_awaiting_upload: int = Field(500, ge=0)
    # Originals (as declared) plus renditions (as rendered), until the image is deleted.
    max_stored_bytes: int = Field(10 * GiB, ge=0)
    # Requests of one owner (other than creates, which their rate bounds) in flight at once in
    # one API process; more wait up to a second for a place, then are refused. Keep it well
    # under PICFORGE_DB_POOL_SIZE (service.in_flight).
    max_in_flight_per_owner: int = Field(8, ge=1)


class ApiSettings(AwsSettings, DatabaseSettings, LimitSettings):
    # Where `POST /v1/images/{id}/reprocess` sends its jobs: the worker's queue.
    queue_url: str
    presign_expires_s: int = Field(300, ge=30, le=3600)
    max_upload_bytes: int = Field(50 * MiB, ge=1)
    # An upload of at least this many bytes gets a multipart ticket unless the client asked
    # for `post` or `put`; parts are this size (S3's minimum is 5 MiB), the last one smaller.
    multipart_threshold_bytes: int = Field(16 * MiB, ge=5 * MiB)
    multipart_part_bytes: int = Field(8 * MiB, ge=5 * MiB, le=5 * 1024 * MiB)
    rendition_url_expires_s: int = Field(3600, ge=60, le=7 * 24 * 3600)
    # A CDN in front of the renditions bucket; rendition URLs are then plain URLs under it.
    public_base_url: str | None = None
    # While a queued reprocess is younger than this and not finished, another is not queued.
    reprocess_coalesce_s: int = Field(900, ge=10)
    # How long a request waits for the answer to one statement before it gives the connection
    # up and answers 503. PostgreSQL's own bound comes first, with a clean cancel: the app
    # role's statement_timeout (15 s, migration 0010). This one is for a database that cannot
    # answer at all (a route black-holed, a primary gone in a failover): without it, a
    # connection waits until the kernel gives up on TCP, about 15 minutes, and a pool of them
    # stalls every request. Keep it above the role's statement_timeout.
    db_command_timeout_s: float = Field(30.0, gt=0, le=600)
    # How long a /readyz answer is reused, so a flood of them costs the dependencies nothing.
    readiness_cache_s: float = Field(2.0, ge=0, le=30)
    # The CloudFront distribution in front of the renditions: DELETE invalidates the image's
    # renditions there (service.cdn). Unset: no CDN to tell.
    cdn_distribution_id: str | None = None
    # How long an Idempotency-Key is remembered; a later request with it makes a new image.
    idempotency_key_ttl_s: int = Field(24 * 3600, ge=60)
    # The upload page at /demo: on in `make dev`, off in production unless asked for.
    demo_enabled: bool = False
    # A key the demo page offers to anyone who opens it: for a local stack only.
    demo_api_key: str | None = Field(None, repr=False)


# The worker's settings beyond the API's (worker.config.WorkerSettings, which the API does not
# import: it brings libvips in), so either process knows every name picforge reads
# (`service.startup.unknown_settings`). tests/test_packaging.py keeps the two in step.
WORKER_ONLY_SETTINGS: Final = frozenset(
    {
        "max_jpeg_scans",
        "max_metadata_bytes",
        "max_pixels",
        "presets",
        "reconcile_grace_s",
        "render_cpu_max_s",
        "render_cpu_s",
        "render_cpu_s_per_mp",
        "render_memory_mb",
        "upload_grace_s",
        "worker_concurrency",
        "worker_drain_s",
        "worker_job_timeout_s",
        "worker_max_receive_count",
        "worker_metrics_host",
        "worker_metrics_port",
        "worker_reconcile_every_s",
        "worker_render_processes",
        "worker_sweep_every_s",
        "worker_visibility_timeout_s",
        "worker_wait_s",
    }
)
