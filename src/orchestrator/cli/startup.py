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
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import click
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, RedisError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from orchestrator.settings import Settings, get_settings, to_libpq_url

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
    url = _parsed("DATABASE_URL", str(settings.database_url), to_libpq_url)
    _fail_plainly("DATABASE_URL", _shown(url), lambda: asyncio.run(_probe_database(url, migrated)))


def check_redis(settings: Settings) -> None:
    url = settings.redis_dsn
    _fail_plainly("REDIS_URL", _shown(url), lambda: asyncio.run(_probe_redis(url)))


async def _probe_database(url: str, migrated: bool) -> None:
    connection = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    try:
        if migrated and await connection.fetchval("SELECT to_regclass('tasks')") is None:
            raise StartupError(
                f"DATABASE_URL: database {make_url(url).database!r} has no orchestrator tables;"
                " run `orchestrator migrate` first"
            )
    finally:
        await connection.close()


async def _probe_redis(url: str) -> None:
    client: Redis = Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
    )
    try:
        await client.ping()
    finally:
        await client.aclose()


def _parsed(setting: str, value: str, convert: Callable[[str], str]) -> str:
    try:
        return convert(value)
    except (ArgumentError, ValueError):
        raise StartupError(f"{setting} is not a URL this service understands: check its form") from None


def _shown(url: str) -> str:
    """The URL without its password: what a message may say."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _fail_plainly(setting: str, shown: str, probe: Callable[[], None]) -> None:
    try:
        probe()
    except StartupError:
        raise
    except asyncpg.InvalidCatalogNameError as exc:
        raise _failed(setting, f"{exc}; create it or point {setting} at one that exists", exc) from None
    except (
        asyncpg.InvalidPasswordError,
        asyncpg.InvalidAuthorizationSpecificationError,
        AuthenticationError,
    ) as exc:
        raise _failed(
            setting, f"{shown} refused our credentials ({exc}); fix the user or password", exc
        ) from None
    except (
        OSError,
        TimeoutError,
        ValueError,
        RedisError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as exc:
        reason = str(exc) or type(exc).__name__
        raise _failed(
            setting, f"cannot use {shown} ({reason}); start the server or fix {setting}", exc
        ) from None


def _failed(setting: str, message: str, exc: BaseException) -> StartupError:
    logger.debug("%s check failed", setting, exc_info=exc)
    return StartupError(f"{setting}: {message}")
