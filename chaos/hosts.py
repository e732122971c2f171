"""The service on its hosts: PostgreSQL, Redis, PgBouncer, the receivers, two API hosts and three
worker hosts, each a process group started through the cluster, and restartable alone."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import secrets
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from chaos.cluster import address
from chaos.pgbouncer import PgBouncer
from chaos.servers import PGBOUNCER_PORT, start_postgres, start_redis

if TYPE_CHECKING:
    from pathlib import Path

    from chaos.cluster import Cluster

API_HOSTS = ("api1", "api2")
WORKER_HOSTS = ("worker1", "worker2", "worker3")
API_PORT, SMTP_PORT, CRM_PORT = 8000, 2525, 8081
# Short leases and rounds, so that a fault heals (and a zombie appears) within seconds.
TIMINGS = {
    "TASK_LEASE_S": "6",
    "TASK_HEARTBEAT_S": "1",
    "RECONCILE_INTERVAL_S": "1",
    "RECONCILE_GRACE_S": "2",
    "SHUTDOWN_GRACE_S": "2",
}
LEASE_S = float(TIMINGS["TASK_LEASE_S"])


def faketime_library() -> str | None:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    return found[0] if found else None


def clock_skew_env(library: str, seconds: float) -> dict[str, str]:
    """The environment that runs a process with its clock `seconds` off, as on a host whose
    clock is wrong (libfaketime; the offset holds for the process's children too)."""
    return {"LD_PRELOAD": library, "FAKETIME": f"{seconds:+g}", "FAKETIME_DONT_RESET": "1"}


@dataclass
class Hosts:
    cluster: Cluster
    out: Path
    database_url: str = ""  # PostgreSQL itself (migrations, the checker, the nemesis)
    redis_url: str = ""
    api_key: str = ""
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    queue_name: str = field(default_factory=lambda: f"chaos-{uuid.uuid4().hex[:8]}")
    services: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    skew_s: dict[str, float] = field(default_factory=dict)
    pgbouncer: PgBouncer | None = None

    def start_servers(self) -> None:
        self.services["postgres"], self.database_url = start_postgres(self.cluster, self.out)
        self.services["redis"], self.redis_url = start_redis(self.cluster, self.out)
        self.start_pgbouncer()
        self.services["mail"] = self.cluster.start(
            "mail",
            [sys.executable, "-m", "chaos.receivers", address("mail"), str(SMTP_PORT), str(CRM_PORT),
             self.secret, str(self.out / "effects.jsonl")],
            self.out / "mail.log",
        )  # fmt: skip

    def start_pgbouncer(self) -> None:
        self.pgbouncer = PgBouncer(
            self.database_url,
            PGBOUNCER_PORT,
            host=address("pgbouncer"),
            pool_size=20,
            prefix=tuple(self.cluster.command("pgbouncer")),
        )
        self.pgbouncer.start()

    def restart_pgbouncer(self) -> None:
        assert self.pgbouncer is not None
        self.pgbouncer.stop(signal.SIGKILL)
        self.start_pgbouncer()

    def env(self, host: str) -> dict[str, str]:
        assert self.pgbouncer is not None
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
        env |= TIMINGS | {
            "DATABASE_URL": self.pgbouncer.url(self.database_url),
            "DB_TRANSACTION_POOLER": "true",
            "REDIS_URL": self.redis_url,
            "QUEUE_NAME": self.queue_name,
            "TEST_JOB_TYPES": "true",
            "API_RATE_LIMIT": "100000/second",
            "API_KEY_FAILURE_LIMIT": "100000/second",
            "SMTP_URL": f"smtp://{address('mail')}:{SMTP_PORT}",
            "CRM_WEBHOOK_URL": f"http://{address('mail')}:{CRM_PORT}/hooks/leads",
            "CRM_WEBHOOK_SECRET": self.secret,
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "WARNING",
        }
        skew = self.skew_s.get(host, 0.0)
        if skew and (library := faketime_library()):
            env |= clock_skew_env(library, skew)
        return env

    async def prepare_database(self) -> None:
        """Migrations and a key, against PostgreSQL itself (a DBA does not go through the pooler)."""
        env = self.env("api1") | {"DATABASE_URL": self.database_url, "DB_TRANSACTION_POOLER": "false"}
        command = [sys.executable, "-m", "orchestrator"]
        async with asyncio.timeout(120):
            while True:  # PostgreSQL may still be starting
                migrate = await asyncio.to_thread(
                    subprocess.run,
                    self.cluster.command("api1", *command, "migrate"),
                    env=env,
                    capture_output=True,
                )
                if migrate.returncode == 0:
                    break
                await asyncio.sleep(0.5)
        created = await asyncio.to_thread(
            subprocess.run,
            self.cluster.command("api1", *command, "apikey", "create", "--name", "chaos", "--scope", "admin"),
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        self.api_key = created.stdout.strip().splitlines()[-1]

    def start(self, host: str) -> None:
        if host in API_HOSTS:
            args = ["api", "--host", address(host), "--port", str(API_PORT), "--workers", "1"]
        else:
            args = ["worker", "--processes", "1", "--concurrency", "10"]
        self.services[host] = self.cluster.start(
            host, [sys.executable, "-m", "orchestrator", *args], self.out / f"{host}.log", self.env(host)
        )

    def signal(self, host: str, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.services[host].pid, sig)

    def kill(self, host: str) -> None:
        self.signal(host, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.services[host].wait(10)

    def restart(self, host: str) -> None:
        self.kill(host)
        self.start(host)

    async def wait_ready(self, timeout_s: float = 120.0) -> None:
        async with httpx.AsyncClient(timeout=2) as client, asyncio.timeout(timeout_s):
            for host in API_HOSTS:
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if (await client.get(f"{self.api_url(host)}/ready")).status_code == 200:
                            break
                    await asyncio.sleep(0.3)

    def api_url(self, host: str) -> str:
        return f"http://{address(host)}:{API_PORT}"

    def stop(self) -> None:
        if self.pgbouncer is not None:
            self.pgbouncer.stop(signal.SIGKILL)
        self.cluster.down()
