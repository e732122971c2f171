"""The faults: each breaks something for a while and undoes it, and says what it did.

Chosen at random from a seeded generator, so a run can be replayed with its seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
from collections import Counter
from typing import TYPE_CHECKING

import asyncpg
import redis.asyncio as redis

from chaos.hosts import API_HOSTS, LEASE_S, WORKER_HOSTS

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from chaos.hosts import Hosts

# Longer than a lease: the partitioned or paused attempt is presumed lost and tried again
# elsewhere, and becomes a zombie when it comes back.
PAST_THE_LEASE_S = LEASE_S * 1.5
CLOCK_SKEW_S = 30.0


class Nemesis:
    def __init__(self, hosts: Hosts, seed: int) -> None:
        self.hosts, self.random = hosts, random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.log: list[str] = []  # what was done, when (seconds from the start)
        self.began = 0.0
        self.faults: dict[str, Callable[[], Awaitable[str]]] = {
            "partition a worker from PostgreSQL": self.worker_from_postgres,
            "partition a worker from Redis": self.worker_from_redis,
            "partition an API host from both": self.api_from_both,
            "pause a worker past its lease": self.pause_worker,
            "skew a host's clock by 30 s": self.skew_clock,
            "terminate PostgreSQL backends": self.terminate_backends,
            "restart PgBouncer": self.restart_pgbouncer,
            "Redis FLUSHALL": self.flush_redis,
            "Redis evicting under maxmemory": self.evict_redis,
            "SIGKILL a process and restart it": self.kill_process,
        }

    async def run(self, duration_s: float, pause_s: tuple[float, float] = (1.0, 4.0)) -> None:
        """Faults one after another, chosen at random, until `duration_s` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration_s
        self.began = self.began or loop.time()
        while loop.time() < deadline:
            name = self.random.choice(sorted(self.faults))
            await self.inject(name)
            await asyncio.sleep(self.random.uniform(*pause_s))

    async def run_each_once(self, pause_s: float = 1.0) -> None:
        """Every fault once, in a fixed order: the short run CI makes on every change."""
        for name in sorted(self.faults):
            await self.inject(name)
            await asyncio.sleep(pause_s)

    async def inject(self, name: str) -> str:
        started = asyncio.get_running_loop().time()
        what = await self.faults[name]()
        self.injected[name] += 1
        self.log.append(f"{started - self.began:7.1f} s  {name}: {what}")
        return what

    async def worker_from_postgres(self) -> str:
        # Workers reach PostgreSQL through PgBouncer: cut both.
        return await self._partition(self.random.choice(WORKER_HOSTS), ["pgbouncer", "postgres"])

    async def worker_from_redis(self) -> str:
        return await self._partition(self.random.choice(WORKER_HOSTS), ["redis"])

    async def api_from_both(self) -> str:
        return await self._partition(self.random.choice(API_HOSTS), ["pgbouncer", "postgres", "redis"])

    async def _partition(self, host: str, peers: list[str]) -> str:
        self.hosts.cluster.partition(host, peers)
        try:
            await asyncio.sleep(PAST_THE_LEASE_S)
        finally:
            self.hosts.cluster.heal()
        return f"{host} cut from {', '.join(peers)} for {PAST_THE_LEASE_S:g} s"

    async def pause_worker(self) -> str:
        host = await self._busiest_worker() or self.random.choice(WORKER_HOSTS)
        self.hosts.signal(host, signal.SIGSTOP)
        try:
            await asyncio.sleep(PAST_THE_LEASE_S)
        finally:
            self.hosts.signal(host, signal.SIGCONT)
        return f"{host} paused for {PAST_THE_LEASE_S:g} s"

    async def _busiest_worker(self) -> str | None:
        """The worker host running the most tasks now: pausing it makes the most zombies."""
        connection = await asyncpg.connect(self.hosts.database_url)
        try:
            rows = await connection.fetch(
                "SELECT worker_id, count(*) AS running FROM tasks WHERE status = 'PROCESSING'"
                " GROUP BY worker_id ORDER BY running DESC"
            )
        finally:
            await connection.close()
        groups = {self.hosts.services[host].pid: host for host in WORKER_HOSTS}
        for row in rows:
            with contextlib.suppress(ValueError, ProcessLookupError):
                if (host := groups.get(os.getpgid(int(str(row["worker_id"]).rsplit("-", 2)[1])))) is not None:
                    return host
        return None

    async def skew_clock(self) -> str:
        host = self.random.choice((*WORKER_HOSTS, *API_HOSTS))
        skew = self.random.choice((-CLOCK_SKEW_S, CLOCK_SKEW_S))
        self.hosts.skew_s[host] = skew
        self.hosts.restart(host)
        return f"{host} restarted with its clock {skew:+g} s off"

    async def terminate_backends(self) -> str:
        connection = await asyncpg.connect(self.hosts.database_url)
        try:
            ended = await connection.fetchval(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND random() < 0.5) AS ended"
            )
        finally:
            await connection.close()
        return f"{ended} PostgreSQL backends terminated"

    async def restart_pgbouncer(self) -> str:
        await asyncio.to_thread(self.hosts.restart_pgbouncer)
        return "PgBouncer killed and started again"

    async def flush_redis(self) -> str:
        async with redis.Redis.from_url(self.hosts.redis_url) as client:
            await client.flushall()
        return "Redis flushed"

    async def evict_redis(self) -> str:
        async with redis.Redis.from_url(self.hosts.redis_url) as client:
            used = int((await client.info("memory"))["used_memory"])
            await client.config_set("maxmemory", str(max(used // 2, 1024 * 1024)))
            try:
                await asyncio.sleep(PAST_THE_LEASE_S)
            finally:
                await client.config_set("maxmemory", "0")
        return "Redis evicting keys (allkeys-lru) under half its memory"

    async def kill_process(self) -> str:
        host = self.random.choice((*WORKER_HOSTS, *API_HOSTS))
        self.hosts.restart(host)
        return f"{host} killed (SIGKILL) and started again"

    async def heal(self) -> None:
        """Everything back: the network whole, every process running with a right clock."""
        self.hosts.cluster.heal()
        for host in (*WORKER_HOSTS, *API_HOSTS):
            self.hosts.signal(host, signal.SIGCONT)
            if self.hosts.skew_s.pop(host, 0.0) or self.hosts.services[host].poll() is not None:
                self.hosts.restart(host)
