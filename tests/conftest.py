"""Real servers for the whole session: DATABASE_URL/REDIS_URL when set, embedded ones otherwise.

Every session gets its own throw-away database, so parallel runs never see each other's rows.
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from typing import TYPE_CHECKING

import pytest

from load.databases import migrated_database
from orchestrator.auth.keys import issue_key
from orchestrator.auth.models import Scope
from orchestrator.embedded import embedded_postgres, embedded_redis
from orchestrator.settings import Settings, to_libpq_url
from tests.helpers import CALLBACK_SECRET, TEST_RATE_LIMIT

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


@pytest.fixture(scope="session")
def environment_settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def server_urls(
    environment_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(PostgreSQL admin URL, Redis URL) of running servers."""
    with ExitStack() as stack:
        postgres = environment_settings.database_url or stack.enter_context(
            embedded_postgres(tmp_path_factory.mktemp("embedded") / "postgres", database="postgres")
        )
        redis = environment_settings.redis_url or stack.enter_context(
            embedded_redis(tmp_path_factory.mktemp("embedded-redis"))
        )
        yield to_libpq_url(postgres), redis


@pytest.fixture(scope="session")
async def database_url(server_urls: tuple[str, str]) -> AsyncIterator[str]:
    """A fresh database for this test session."""
    async with migrated_database(server_urls[0], "orchestrator_test") as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, server_urls: tuple[str, str]) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        redis_url=server_urls[1],
        api_workers=2,
        db_pool_size=4,
        db_max_overflow=2,
        max_request_body_bytes=64 * 1024,
        # Our own queue on a shared Redis; fast leases and reconciler rounds so faults heal in seconds.
        queue_name=f"orchestrator-test-{uuid.uuid4().hex[:8]}",
        job_packages=["jobs", "tests.jobs"],
        test_job_types=True,
        email_allowed_domains=["example.com"],
        # Callbacks to the tests' own receivers only.
        callback_allowed_hosts=["127.0.0.1"],
        callback_secret=CALLBACK_SECRET,
        task_lease_s=3.0,
        task_heartbeat_s=0.3,
        reconcile_interval_s=0.5,
        reconcile_grace_s=1.0,
        limit_recheck_s=0.5,
        shutdown_grace_s=5,
        api_rate_limit=TEST_RATE_LIMIT,
        api_key_failure_limit=TEST_RATE_LIMIT,
        # Off unless a test asks for it: every process of the session would want the one port.
        metrics_port=0,
    )


@pytest.fixture(scope="session")
async def api_key(settings: Settings) -> str:
    """An admin key in the session's database: what every test client sends."""
    return await issue_key(settings, "tests", Scope.ADMIN)
