"""Every setting of the service, read once from the environment (and `.env`)."""

from __future__ import annotations

import base64
import ipaddress
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

from orchestrator.rates import RATE_LIMIT_MAX_PER_WINDOW, parse_limit

# PostgreSQL's default max_connections is 100: keep api workers x (pool + overflow) well under it.
DEFAULT_POOL_SIZE = 10
DEFAULT_MAX_OVERFLOW = 0


class JobLimits(BaseModel):
    """A deployment's override of a job type's limits (JOB_LIMITS)."""

    model_config = ConfigDict(extra="forbid")

    concurrency: int | None = Field(default=None, ge=1, le=100_000)
    rate_limit: str | None = None

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_limit(value, max_per_window=RATE_LIMIT_MAX_PER_WINDOW)
        return value


class Settings(BaseSettings):
    """Configuration. Unset URLs mean: use the embedded servers under `data_dir`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = Field(default=None, description="PostgreSQL URL; unset: embedded server")
    redis_url: str | None = Field(default=None, description="Redis URL; unset: embedded server")
    data_dir: Path = Field(default=Path(".orchestrator"), description="Embedded servers' data")

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)

    db_pool_size: int = Field(default=DEFAULT_POOL_SIZE, ge=1)
    db_max_overflow: int = Field(default=DEFAULT_MAX_OVERFLOW, ge=0)
    db_pool_timeout_s: float = Field(default=5.0, gt=0)
    db_statement_timeout_ms: int = Field(default=10_000, ge=0)
    db_transaction_pooler: bool = Field(
        default=False,
        description="PostgreSQL is reached through a pooler in transaction mode (PgBouncer): settings"
        " are made per transaction and no prepared statement is reused",
    )
    ready_timeout_s: float = Field(default=2.0, gt=0)

    api_rate_limit: str | None = Field(
        default="100/second",
        description="Per key, shared by all API workers, e.g. '6000/minute'; a key may set its own",
    )
    api_key_failure_limit: str = Field(
        default="10/second",
        min_length=1,
        description="Wrong keys per client address before 429; valid keys are never counted",
    )
    api_key_cache_s: float = Field(
        default=5.0,
        ge=0,
        description="How old an API worker's list of live keys may be; a revoke lands within it",
    )
    max_request_body_bytes: int = Field(default=1_048_576, ge=1024)
    cors_allow_origins: list[str] = Field(
        default=[], description='Browser origins allowed, e.g. ["https://app.example.com"]; none: CORS off'
    )

    job_packages: list[str] = Field(default=["jobs"], description="Packages whose modules declare jobs")
    test_job_types: bool = Field(
        default=False, description="Run the job types made for tests and benchmarks (noop); off in production"
    )
    queue_name: str = "orchestrator"
    redis_max_connections: int = Field(default=64, ge=8, description="Per process; waits when all are busy")
    redis_timeout_s: float = Field(default=5.0, gt=0, description="Connect, and wait for a pooled connection")
    worker_processes: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    worker_concurrency: int = Field(default=20, ge=1, description="Jobs run at once per worker process")
    worker_db_pool_size: int | None = Field(
        default=None,
        ge=1,
        description="PostgreSQL connections per worker process; unset: concurrency + 2, at most 30",
    )
    worker_db_max_overflow: int = Field(default=10, ge=0, description="Extra connections per worker process")
    worker_heartbeat_s: int = Field(
        default=5, ge=1, description="How often a worker process says it is alive (GET /workers, the SAQ UI)"
    )
    task_lease_s: float = Field(
        default=15.0, gt=0, description="A PROCESSING task not renewed this long is lost"
    )
    task_heartbeat_s: float = Field(
        default=1.0, gt=0, description="Lease renewal; also how fast cancel lands"
    )
    reconcile_interval_s: float = Field(default=2.0, gt=0)
    job_limits: dict[str, JobLimits] = Field(
        default_factory=dict,
        description="Per job type, over its module's:"
        ' {"crm_update": {"concurrency": 5, "rate_limit": "10/second"}}',
    )
    limit_recheck_s: float = Field(
        default=5.0,
        gt=0,
        description="How soon a task held back by a limit or its concurrency key looks again (the end of"
        " the task it waits for hands it the slot or key at once)",
    )
    schedule_poll_s: float = Field(
        default=1.0, gt=0, description="How often each worker process fires the due schedules' ticks"
    )
    schedules_max: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Schedules the API may hold (declared ones not counted): each costs every worker a look",
    )
    schedule_catch_up_s: float = Field(
        default=30.0,
        ge=0,
        description="Ticks missed by up to this long all fire; of older ones only the latest, once",
    )
    reconcile_grace_s: float = Field(
        default=5.0,
        ge=1.0,
        description="Age before a due task is checked; a job dequeued this long ago and not yet claimed"
        " is delivered again, so it must outlast a slow claim",
    )
    task_retention: str = Field(
        default="30d",
        description="How long finished tasks (and their history) are kept, e.g. 30d, 12h; 0: forever",
    )
    shutdown_grace_s: int = Field(default=10, ge=0, description="SIGTERM: time for in-flight jobs to finish")
    saq_job_ttl_s: int = Field(default=60, ge=1, description="How long Redis keeps a finished job for the UI")

    default_phone_region: str = Field(default="US", description="Region for phones without +country")
    crm_webhook_url: str | None = Field(default=None, description="crm_update POSTs each lead's state here")
    crm_webhook_secret: SecretStr | None = Field(
        default=None,
        description="Standard Webhooks signing key: whsec_ and base64, or any other text used as it is",
    )
    crm_webhook_timeout_s: float = Field(default=10.0, gt=0)
    smtp_url: SecretStr | None = Field(
        default=None, description="smtp://user:pass@host:587?starttls=true or smtps://...; unset: .eml files"
    )
    email_allowed_domains: list[str] = Field(
        default=[],
        description='Domains email_send may mail with a `to`, e.g. ["example.com"]; none: only leads',
    )
    callback_allowed_hosts: list[str] = Field(
        default=[],
        description='Hosts a callback_url may name, e.g. ["hooks.example.com", "*.example.org"];'
        " none: no callbacks",
    )
    callback_secret: SecretStr | None = Field(
        default=None,
        description="Standard Webhooks signing key of callbacks: whsec_ and base64, or any other text"
        " used as it is",
    )
    callback_timeout_s: float = Field(default=10.0, gt=0, le=60, description="One callback POST's time limit")
    callback_max_attempts: int = Field(
        default=24,
        ge=1,
        le=50,
        description="POSTs of one callback before it is given up: 24 span 11 to 14 h (backoff up to 1 h)",
    )
    callback_poll_s: float = Field(
        default=1.0, gt=0, description="How often each worker looks for due callbacks"
    )
    email_from: str = Field(default="orchestrator@localhost", description="From: of email_send")
    email_outbox_dir: Path = Field(default=Path(".orchestrator/outbox"), description="Where .eml files go")

    @field_validator("database_url", "redis_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `DATABASE_URL=` in a copied .env means "not set" (embedded servers), not a URL to parse.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("task_retention")
    @classmethod
    def _retention_parses(cls, value: str) -> str:
        seconds = duration_s(value)  # its ValueError names what is wrong
        if seconds and not 60 <= seconds <= 3650 * 86400:
            raise ValueError("TASK_RETENTION: between 1m and 3650d, or 0 to keep finished tasks forever")
        return value

    @property
    def task_retention_s(self) -> float | None:
        """TASK_RETENTION in seconds; None: kept forever."""
        return duration_s(self.task_retention) or None

    @field_validator("callback_allowed_hosts")
    @classmethod
    def _hosts_as_urls_write_them(cls, hosts: list[str]) -> list[str]:
        return [normal_host(host) for host in hosts if host.strip()]

    @field_validator("crm_webhook_secret", "callback_secret")
    @classmethod
    def _signing_key_decodes(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().startswith("whsec_"):
            signing_key(value.get_secret_value())  # its ValueError says what is wrong
        return value

    @field_validator("email_allowed_domains")
    @classmethod
    def _domains_in_lower_case(cls, domains: list[str]) -> list[str]:
        return [domain.strip().lower() for domain in domains if domain.strip()]

    @field_validator("api_rate_limit", "api_key_failure_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str | None) -> str | None:
        if not value:
            return None
        parse_limit(value)  # its ValueError names what is wrong
        return value

    @model_validator(mode="after")
    def _lease_outlives_a_failed_renewal(self) -> Self:
        # With fewer than three renewals per lease, one slow or failed renewal lets the lease
        # expire under a live handler, and the reconciler hands its task to another worker.
        if self.task_heartbeat_s * 3 > self.task_lease_s:
            raise ValueError(
                f"TASK_HEARTBEAT_S ({self.task_heartbeat_s:g} s) must be at most a third of TASK_LEASE_S"
                f" ({self.task_lease_s:g} s), so that a lease survives a renewal that fails"
            )
        return self

    @model_validator(mode="after")
    def _webhook_is_signed(self) -> Self:
        if self.crm_webhook_url and not self.crm_webhook_secret:
            raise ValueError("CRM_WEBHOOK_URL needs CRM_WEBHOOK_SECRET: the CRM must be able to verify us")
        if self.callback_allowed_hosts and not self.callback_secret:
            raise ValueError(
                "CALLBACK_ALLOWED_HOSTS needs CALLBACK_SECRET: receivers must be able to verify us"
            )
        if self.callback_secret and not self.callback_secret.get_secret_value().startswith("whsec_"):
            raise ValueError(
                "CALLBACK_SECRET: a Standard Webhooks key, whsec_ and the base64 of 24 to 64 random bytes,"
                " which receivers' libraries read as such"
            )
        return self

    log_level: str = "INFO"
    log_format: Literal["json", "console"] | None = Field(
        default=None,
        description="Log lines as JSON or for a terminal; unset: JSON unless stderr is a terminal",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="OpenTelemetry collector (OTLP over HTTP); unset: tracing off"
    )
    access_log: bool = Field(default=False, description="One log line per HTTP request, with its id")
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Address of the Prometheus endpoint; loopback unless opened on purpose",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Prometheus endpoint port; unset: 9464 for `up` and `api`, 9465 for `worker`; 0: off",
    )

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the asyncpg driver, whatever scheme the user wrote."""
        if self.database_url is None:
            raise RuntimeError("DATABASE_URL is not set and no embedded server was started")
        return to_asyncpg_url(self.database_url)

    @property
    def redis_dsn(self) -> str:
        if self.redis_url is None:
            raise RuntimeError("REDIS_URL is not set and no embedded server was started")
        return self.redis_url


DURATION = re.compile(r"(\d+)([smhd])")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(value: str) -> float:
    """'30d', '12h', '90m', '45s' or '0' (none) in seconds."""
    if value.strip() == "0":
        return 0.0
    if (match := DURATION.fullmatch(value.strip())) is None:
        raise ValueError(f"not a duration: {value!r} (write it like 30d, 12h, 90m or 45s; 0 for none)")
    return float(int(match[1]) * UNIT_S[match[2]])


def to_asyncpg_url(url: str) -> str:
    """`postgres://`, `postgresql://` or `postgresql+psycopg://` -> `postgresql+asyncpg://`."""
    return _with_driver(url, "postgresql+asyncpg").render_as_string(hide_password=False)


def to_libpq_url(url: str, database: str | None = None) -> str:
    """A plain `postgresql://` URL (what asyncpg.connect and psql take), optionally to another database."""
    parsed = _with_driver(url, "postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _with_driver(url: str, driver: str) -> URL:
    return make_url(url.replace("postgres://", "postgresql://", 1)).set(drivername=driver)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def signing_key(secret: str) -> bytes:
    """The bytes a Standard Webhooks key `whsec_<base64>` stands for (24 to 64, as the scheme
    asks); any other text is its UTF-8 bytes (a CRM key set before the scheme)."""
    if not secret.startswith("whsec_"):
        return secret.encode()
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except ValueError:
        raise ValueError("a whsec_ key is whsec_ and standard base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"a whsec_ key stands for 24 to 64 bytes, not {len(key)}")
    return key


def normal_host(entry: str) -> str:
    """An allowed host as a URL's host reads once parsed: lower case, IDNA (punycode), no
    trailing dot; `*.` and a domain for any host under it; an IPv6 address without brackets."""
    text = entry.strip().lower().rstrip(".")
    wildcard = text.startswith("*.")
    name = text.removeprefix("*.").strip("[]")
    if not name or any(c in name for c in "/@?#*") or (":" in name and not _ipv6(name)):
        raise ValueError(
            f"CALLBACK_ALLOWED_HOSTS: {entry!r} is not a host name or address (no scheme, port or path)"
        )
    if ":" not in name:
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"CALLBACK_ALLOWED_HOSTS: {entry!r} is not a valid host name") from None
    return f"*.{name}" if wildcard else name


def _ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True
