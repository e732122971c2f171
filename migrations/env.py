"""Alembic environment: async engine on asyncpg, models' metadata as the target."""

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from orchestrator import idempotency as _idempotency  # noqa: F401
from orchestrator.auth import models as _auth  # noqa: F401
from orchestrator.callbacks import models as _callbacks  # noqa: F401
from orchestrator.db import Base
from orchestrator.leads import models as _leads  # noqa: F401  (registers the tables)
from orchestrator.mail import models as _mail  # noqa: F401
from orchestrator.runner import models as _runner  # noqa: F401
from orchestrator.schedules import models as _schedules  # noqa: F401
from orchestrator.settings import get_settings, to_asyncpg_url
from orchestrator.tasks import models as _tasks  # noqa: F401
from orchestrator.workers import models as _workers  # noqa: F401

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    # Callers (the CLI, the tests) may pass the URL explicitly; otherwise Settings decides.
    url = config.attributes.get("database_url") or get_settings().database_url
    if not url:
        raise RuntimeError("DATABASE_URL is not set")
    return to_asyncpg_url(url)


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        asyncio.run(run_async_migrations(create_async_engine(database_url(), poolclass=pool.NullPool)))
    elif isinstance(connectable, AsyncEngine):
        asyncio.run(run_async_migrations(connectable))
    else:
        do_run_migrations(connectable)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
