"""The app in-process (its real lifespan, engine and Redis client) and a clean database per test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from orchestrator.db import in_transaction
from tests.helpers import app_client

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar import Litestar
    from litestar.testing import AsyncTestClient

    from orchestrator.settings import Settings

TRUNCATE = text("TRUNCATE leads, tasks, task_events, idempotency_keys, schedules CASCADE")


@pytest.fixture(scope="session")
async def api(settings: Settings, api_key: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with app_client(settings, api_key) as client:
        yield client


@pytest.fixture
async def client(api: AsyncTestClient[Litestar], settings: Settings) -> AsyncTestClient[Litestar]:
    await in_transaction(settings, lambda session: session.execute(TRUNCATE))
    return api
