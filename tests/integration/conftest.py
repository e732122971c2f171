"""The app in-process (its real lifespan, engine and Redis client) and a clean database per test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from orchestrator.app import create_app
from tests.conftest import bearer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar import Litestar

    from orchestrator.settings import Settings


@pytest.fixture(scope="session")
async def api(settings: Settings, api_key: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=create_app(settings)) as client:
        client.headers.update(bearer(api_key))
        yield client


@pytest.fixture
async def client(api: AsyncTestClient[Litestar], settings: Settings) -> AsyncTestClient[Litestar]:
    engine = create_async_engine(settings.sqlalchemy_url)
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE leads, tasks, task_events, idempotency_keys CASCADE"))
    await engine.dispose()
    return api
