"""Start-up checks that fail in one plain line: the setting, what is wrong, what to do.

Each runs before anything is started, so a wrong setting costs no half-started service and no
traceback (that is logged at DEBUG, for whoever wants it). Exit status 1.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import asyncpg
import click
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, RedisError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from orchestrator.db import engine_options
from orchestrator.settings import Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0


class StartupError(click.ClickException):
    """One line on stderr, exit status 1."""


def load_settings() -> Settings:
    """The settings, or a StartupError naming every setting that is wrong."""
    try:
        return get_settings()
    except ValidationError as exc:
        wrong = "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper() or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise StartupError(f"invalid settings: {wrong}") from None


def check_port(host: str, port: int) -> None:
    """The API's address is free: checked before any server or worker is started for it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # As Granian binds: a port held only by connections in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"API_PORT: {host}:{port} is already in use (another orchestrator?); stop what holds"
                    f" it or choose another port (--port or API_PORT)"
                ) from None
            raise StartupError(f"API_HOST: cannot listen on {host}:{port}: {exc.strerror}") from None


def check_database(settings: Settings, *, migrated: bool = False) -> None:
    """PostgreSQL answers at DATABASE_URL, the database exists and (`migrated`) has our tables."""
    shown = _where(str(settings.database_url))
    _fail_plainly("DATABASE_URL", shown, lambda: asyncio.run(_probe_database(settings, migrated)))


def check_redis(settings: Settings) -> None:
    _fail_plainly(
        "REDIS_URL", _where(settings.redis_dsn), lambda: asyncio.run(_probe_redis(settings.redis_dsn))
    )


async def _probe_database(settings: Settings, migrated: bool) -> None:
    # Connect as the service will: the same driver, URL options (say, PgBouncer's
    # prepared_statement_cache_size=0) and connection settings.
    connect_args = engine_options(settings)["connect_args"]
    engine = create_async_engine(settings.sqlalchemy_url, poolclass=NullPool, connect_args=connect_args)
    try:
        async with engine.connect() as connection:
            if migrated and await connection.scalar(text("SELECT to_regclass('tasks')")) is None:
                database = make_url(settings.sqlalchemy_url).database
                raise StartupError(
                    f"DATABASE_URL: database {database!r} has no orchestrator tables;"
                    " run `orchestrator migrate` first"
                )
    finally:
        await engine.dispose()


async def _probe_redis(url: str) -> None:
    client: Redis = Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
    )
    try:
        await client.ping()
    finally:
        await client.aclose()


def _where(url: str) -> str:
    """Scheme, host, port and path of a URL: what a message may say. Never the user, the
    password or the query (which may hold a password too)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "a local socket"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the URL it holds"
    host = f"[{host}]" if ":" in host else host
    # An unencoded '/' or '#' in a password moves the rest of it into the path or fragment.
    path = parts.path if "@" not in parts.path else ""
    return f"{parts.scheme}://{host}{port}{path}"


def _fail_plainly(setting: str, shown: str, probe: Callable[[], None]) -> None:
    try:
        probe()
    except StartupError:
        raise
    except Exception as exc:  # every failure becomes one line; the traceback goes to DEBUG
        raise _failed(setting, _advice(setting, shown, _cause(exc)), exc) from None


def _cause(exc: BaseException) -> BaseException:
    """The driver's own error under SQLAlchemy's wrappers, which hold the SQL and parameters."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        if isinstance(current, asyncpg.PostgresError | OSError | RedisError):
            return current
        current = current.orig if isinstance(current, DBAPIError) else current.__cause__
    return exc


def _advice(setting: str, shown: str, cause: BaseException) -> str:
    if isinstance(cause, ArgumentError | ValueError | OverflowError):
        return "is not a URL this service understands; check its form (scheme, host, port)"
    if isinstance(cause, asyncpg.InvalidCatalogNameError):
        return f"{cause}; create it, or point {setting} at one that exists"
    if isinstance(
        cause,
        asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError | AuthenticationError,
    ):
        return f"{shown} refused our credentials ({cause}); fix the user or password"
    if isinstance(cause, asyncpg.PostgresError | OSError | RedisError):
        return f"cannot use {shown} ({cause or type(cause).__name__}); start the server or fix {setting}"
    return f"cannot use {shown} ({type(cause).__name__}); start the server or fix {setting}"


def _failed(setting: str, message: str, exc: BaseException) -> StartupError:
    logger.debug("%s check failed", setting, exc_info=exc)
    return StartupError(f"{setting}: {message}")
