"""A PgBouncer in transaction pooling mode (Debian's package), in front of one PostgreSQL server.

Transaction mode is what a busy deployment runs: each transaction may get another server
connection, so nothing may outlive a transaction (a prepared statement, a session setting).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

BINARY = "/usr/sbin/pgbouncer"


def installed() -> bool:
    return Path(BINARY).exists() or shutil.which("pgbouncer") is not None


class PgBouncer:
    """One pgbouncer process for `database_url`'s server, listening on `host:port`; its files in
    a directory of its own, removed by `stop`."""

    def __init__(
        self,
        database_url: str,
        port: int,
        host: str = "127.0.0.1",
        pool_size: int = 10,
        prefix: tuple[str, ...] = (),
    ) -> None:
        server = make_url(database_url)
        # A Unix socket's directory (`?host=/dir`, as the embedded server gives) or a host.
        socket_dir = server.query.get("host")
        self.server_host = str(socket_dir) if socket_dir else server.host or "127.0.0.1"
        self.server_port = server.port or 5432
        self.user, self.password = server.username or "postgres", server.password or ""
        self.host, self.port, self.pool_size = host, port, pool_size
        self.prefix = prefix
        # pgbouncer refuses to run as root: as root it runs as `postgres`, which must reach its files.
        self.directory = Path(tempfile.mkdtemp(prefix="orchestrator-pgbouncer-"))
        self.run_as = "postgres" if os.geteuid() == 0 and _user_exists("postgres") else None
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database_url: str) -> str:
        """`database_url` with this PgBouncer as its server."""
        url = make_url(database_url).difference_update_query(["host"])
        return url.set(host=self.host, port=self.port).render_as_string(hide_password=False)

    def write_config(self) -> Path:
        users = self.directory / "users.txt"
        users.write_text(f'"{self.user}" "{self.password}"\n')
        config = self.directory / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={self.server_host} port={self.server_port}\n"
            "[pgbouncer]\n"
            f"listen_addr = {self.host}\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {users}\n"
            "pool_mode = transaction\n"
            # A client's prepared statements may be closed in another transaction, on another
            # server connection: clean every server connection when a transaction gives it back.
            "server_reset_query = DEALLOCATE ALL\n"
            "server_reset_query_always = 1\n"
            f"default_pool_size = {self.pool_size}\n"
            "max_client_conn = 1000\n"
            # A server connection that PostgreSQL dropped is found at its next use.
            "server_check_delay = 0\n"
            f"logfile = {self.directory / 'pgbouncer.log'}\n"
            f"pidfile = {self.directory / 'pgbouncer.pid'}\n"
        )
        return config

    def start(self) -> None:
        config = self.write_config()
        user = []
        if self.run_as is not None:
            user = ["-u", self.run_as]
            for path in (self.directory, *self.directory.iterdir()):
                shutil.chown(path, self.run_as)
        self.process = subprocess.Popen(
            [*self.prefix, BINARY, *user, str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.directory / "stderr.log").open("ab"),
            start_new_session=True,
        )

    async def wait_ready(self, timeout_s: float = 15.0) -> None:
        async with asyncio.timeout(timeout_s):
            while True:
                self.assert_running()
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection(self.host, self.port)
                    writer.close()
                    return
                await asyncio.sleep(0.1)

    def assert_running(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            log = self.directory / "pgbouncer.log"
            raise AssertionError(
                f"pgbouncer exited {self.process.returncode}: {log.read_text() if log.exists() else ''}"
            )

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop it (SIGINT: at once; SIGTERM: once its clients are done, which a test does not
        wait for) and remove its files."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT if sig == signal.SIGTERM else sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
