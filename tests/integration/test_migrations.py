"""The Alembic history: one head, upgrade from empty, down and up again, models match the DDL."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from pytest_alembic.tests import (  # noqa: F401  (collected as tests here)
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy.ext.asyncio import create_async_engine

from load.databases import create_database, drop_database
from orchestrator.settings import to_asyncpg_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import AsyncEngine


@pytest.fixture
async def alembic_engine(server_urls: tuple[str, str]) -> AsyncIterator[AsyncEngine]:
    admin_url, _ = server_urls
    url = await create_database(admin_url, "orchestrator_migrations")
    engine = create_async_engine(to_asyncpg_url(url))
    yield engine
    await engine.dispose()
    await drop_database(admin_url, url)
