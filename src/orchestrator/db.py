"""The declarative base with its constraint naming convention, and the engine settings."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

from advanced_alchemy.base import convention
from sqlalchemy import Enum, MetaData, event, func
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP
from sqlalchemy.ext.asyncio import AsyncAttrs, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from enum import StrEnum

    from sqlalchemy import Connection
    from sqlalchemy.engine import ExceptionContext

    from orchestrator.settings import Settings

T = TypeVar("T")


def string_enum(values: type[StrEnum], name: str, length: int) -> Enum:
    """A VARCHAR with a CHECK of the known values: adding one is a plain migration, not a type ALTER."""
    return Enum(
        values,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(AsyncAttrs, DeclarativeBase):
    """Every table; named constraints so that migrations can drop and alter them by name."""

    metadata = MetaData(naming_convention=convention)
    type_annotation_map = {
        dt.datetime: TIMESTAMP(timezone=True),
        dict[str, Any]: JSONB,
    }


class Timestamped:
    """created_at / updated_at kept by the database clock, so every process agrees on order."""

    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


def engine_options(settings: Settings) -> dict[str, Any]:
    """Pool and connection options shared by the API's, the workers' and the CLI's engines;
    `prepare` each engine made with them."""
    return {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_s,
        # No pre-ping: it costs a round trip per checkout (a sixth of a worker's time under load).
        # A connection PostgreSQL dropped fails its statement once (503 / a retried attempt) and
        # is discarded; recycling bounds how stale an idle one can get.
        "pool_recycle": 300,
        "connect_args": connect_args(settings),
    }


def connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's connection options. Through a pooler in transaction mode, each transaction may
    run on another server connection, shared with other clients: a setting is made per
    transaction (`prepare`), and each prepared statement is named uniquely and not kept."""
    if settings.db_transaction_pooler:
        return {
            "timeout": settings.db_pool_timeout_s,
            "server_settings": {"application_name": "orchestrator"},
            "statement_cache_size": 0,
            "prepared_statement_cache_size": 0,
            "prepared_statement_name_func": lambda: f"__orchestrator_{uuid.uuid4().hex}__",
        }
    return {
        "timeout": settings.db_pool_timeout_s,
        "server_settings": {
            "statement_timeout": str(settings.db_statement_timeout_ms),
            "application_name": "orchestrator",
        },
    }


# A prepared statement the server does not know: the pooler gave the connection's statements
# to different server connections (its server connection died inside a transaction).
UNKNOWN_STATEMENT = "26000"


def prepare(engine: AsyncEngine, settings: Settings) -> AsyncEngine:
    """Through a transaction pooler, the statement timeout is set in every transaction, and a
    connection the pooler lost track of is thrown away rather than failing every transaction."""
    if settings.db_transaction_pooler:
        statement = f"SET LOCAL statement_timeout = {int(settings.db_statement_timeout_ms)}"

        def set_timeout(connection: Connection) -> None:
            connection.exec_driver_sql(statement)

        def discard_if_lost(context: ExceptionContext) -> None:
            if getattr(context.original_exception, "sqlstate", None) == UNKNOWN_STATEMENT:
                context.is_disconnect = True

        event.listen(engine.sync_engine, "begin", set_timeout)
        event.listen(engine.sync_engine, "handle_error", discard_if_lost)
    return engine


async def in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One unit of work on a one-connection engine: for commands, not for serving."""
    engine = prepare(
        create_async_engine(settings.sqlalchemy_url, poolclass=NullPool, connect_args=connect_args(settings)),
        settings,
    )
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            return await work(session)
    finally:
        await engine.dispose()


# SQLSTATEs of a server that is going, gone or not yet back: connection exceptions (class 08),
# admin_shutdown, crash_shutdown, cannot_connect_now.
SERVER_AWAY = ("08", "57P01", "57P02", "57P03")
# Worth the same statement again a moment later: the server away, out of connections or
# resources (class 53), a serialization failure or deadlock, a statement timeout.
TRANSIENT = (*SERVER_AWAY, "53", "40001", "40P01", "57014")


def server_away(exc: BaseException) -> bool:
    """The server is not there to answer: a refused or dropped connection, a pool wait that
    timed out, one of the SERVER_AWAY SQLSTATEs."""
    if isinstance(exc, OSError | sa_exc.TimeoutError):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and (
        exc.connection_invalidated or sqlstate(exc).startswith(SERVER_AWAY)
    )


def transient(exc: BaseException) -> bool:
    """A database error that the same statement may not meet again a moment later."""
    return server_away(exc) or sqlstate(exc).startswith(TRANSIENT)


def sqlstate(exc: BaseException) -> str:
    """The SQLSTATE PostgreSQL answered with; empty for an error that is not the driver's."""
    if not isinstance(exc, sa_exc.DBAPIError):
        return ""
    return str(getattr(exc.orig, "sqlstate", "") or "")
