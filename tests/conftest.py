"""Real servers for the whole session: DATABASE_URL/REDIS_URL when set, embedded ones otherwise.

Every session gets its own throw-away database, so parallel runs never see each other's rows.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import ExitStack, asynccontextmanager
from typing import TYPE_CHECKING

import asyncpg
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url

from orchestrator.app import create_app
from orchestrator.auth.keys import issue_key
from orchestrator.auth.models import Scope
from orchestrator.embedded import embedded_postgres, embedded_redis
from orchestrator.schema import migrate_to_head
from orchestrator.settings import Settings, to_libpq_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from litestar import Litestar

TEST_RATE_LIMIT = "10000/second"


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


async def create_database(admin_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return to_libpq_url(admin_url, name)


async def drop_database(admin_url: str, url: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await connection.close()


@asynccontextmanager
async def migrated_database(admin_url: str, prefix: str) -> AsyncIterator[str]:
    """A fresh database migrated to head, dropped afterwards."""
    url = await create_database(admin_url, prefix)
    try:
        # Alembic's env runs its own event loop: keep it off this one.
        await asyncio.to_thread(migrate_to_head, Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
        yield url
    finally:
        await drop_database(admin_url, url)


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
        task_lease_s=3.0,
        task_heartbeat_s=0.3,
        reconcile_interval_s=0.5,
        reconcile_grace_s=1.0,
        shutdown_grace_s=5,
        # High enough never to refuse a test, low enough that the moving window stays small.
        api_rate_limit=TEST_RATE_LIMIT,
        api_key_failure_limit=TEST_RATE_LIMIT,
    )


@pytest.fixture(scope="session")
async def api_key(settings: Settings) -> str:
    """An admin key in the session's database: what every test client sends."""
    return await issue_key(settings, "tests", Scope.ADMIN)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def app_client(settings: Settings, api_key: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app in-process, with its real lifespan, engine and Redis client, sending `api_key`."""
    async with AsyncTestClient(app=create_app(settings)) as client:
        client.headers.update(bearer(api_key))
        yield client


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    env = {
        name.upper(): json.dumps(value) if isinstance(value, list) else str(value)
        for name, value in settings.model_dump(exclude={"crm_webhook_secret", "data_dir"}).items()
        if value is not None
    }
    return env
