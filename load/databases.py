"""Throw-away PostgreSQL databases, so that runs sharing a server never see each other's rows.

The tests, the load suite's tests and the benchmark each make theirs here.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import asyncpg
from sqlalchemy.engine import make_url

from orchestrator.schema import migrate_to_head
from orchestrator.settings import Settings, to_libpq_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


async def create_database(admin_url: str, prefix: str) -> str:
    """An empty database named after `prefix` on the server of `admin_url`; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _execute(admin_url, f'CREATE DATABASE "{name}"')
    return to_libpq_url(admin_url, name)


async def drop_database(admin_url: str, url: str) -> None:
    # FORCE: connections a test or a killed service left open would block the drop.
    await _execute(admin_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@asynccontextmanager
async def migrated_database(admin_url: str, prefix: str) -> AsyncIterator[str]:
    """A fresh database migrated to head, dropped afterwards."""
    url = await create_database(admin_url, prefix)
    try:
        # Alembic's env runs its own event loop: keep it off this one.
        await asyncio.to_thread(migrate_to_head, Settings(_env_file=None, database_url=url))
        yield url
    finally:
        await drop_database(admin_url, url)


async def _execute(admin_url: str, statement: str) -> None:
    connection = await asyncpg.connect(to_libpq_url(admin_url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
