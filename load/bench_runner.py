"""Throughput and latency of the job runner, against raw SAQ measured in the same run.

    uv run python load/bench_runner.py [--tasks 3000] [--processes 2] [--concurrency 20]

(a) raw SAQ: a no-op function, enqueued straight into Redis, no database at all;
(b) orchestrator: the `noop` job type submitted over HTTP (POST /tasks), every transition
    written to PostgreSQL, timed until every task reads COMPLETED;
(c) submit -> COMPLETED latency at low load, from the rows' own timestamps.
Uses DATABASE_URL / REDIS_URL when set (a throw-away database is created), else embedded
servers in a temporary folder. Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop
from saq import Worker

from load import LOAD_RATE_LIMIT
from load.bench_api import sample
from load.databases import migrated_database
from load.service import Service, children_of, free_port
from orchestrator.auth.keys import issue_key
from orchestrator.auth.models import Scope
from orchestrator.embedded import embedded_services
from orchestrator.queue import make_queue
from orchestrator.settings import Settings

# Heap (with TOAST) and indexes of the two tables a task lives in.
STORAGE = """
    SELECT (SELECT count(*) FROM tasks) AS tasks, (SELECT count(*) FROM task_events) AS events,
           pg_table_size('tasks') AS tasks_bytes, pg_indexes_size('tasks') AS tasks_index_bytes,
           pg_table_size('task_events') AS events_bytes, pg_indexes_size('task_events') AS events_index_bytes
"""


async def _noop(_: Any) -> None:
    return None


def _raw_worker(redis_url: str, queue_name: str, concurrency: int) -> None:
    async def main() -> None:
        queue = make_queue(Settings(redis_url=redis_url, queue_name=queue_name))
        worker = Worker(queue, functions=[("noop", _noop)], concurrency=concurrency, dequeue_timeout=1.0)
        await worker.start()

    uvloop.run(main())


async def bench_raw_saq(redis_url: str, tasks: int, processes: int, concurrency: int) -> float:
    queue_name = f"bench-raw-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_raw_worker, args=(redis_url, queue_name, concurrency))
        for _ in range(processes)
    ]
    for process in workers:
        process.start()
    queue = make_queue(Settings(redis_url=redis_url, queue_name=queue_name))
    try:
        await asyncio.sleep(3)  # let the workers import and connect
        started = time.perf_counter()
        await asyncio.gather(*(queue.enqueue("noop", timeout=0, retries=1, ttl=60) for _ in range(tasks)))
        while await queue.count("incomplete"):
            await asyncio.sleep(0.02)
        return tasks / (time.perf_counter() - started)
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.join(10)
        await queue.disconnect()


def _request(batch: int, api_key: str) -> bytes:
    if batch == 1:
        path, body = b"/tasks", b'{"type": "noop"}'
    else:
        path, body = b"/tasks/batch", json.dumps({"tasks": [{"type": "noop"}] * batch}).encode()
    head = b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" % path
    head += b"Authorization: Bearer %s\r\n" % api_key.encode()
    return head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


async def _post_loop(port: int, api_key: str, count: int, batch: int, latencies: list[float]) -> None:
    """One keep-alive connection posting `count` tasks. A bare HTTP/1.1 client: an httpx client
    costs more CPU than the server it measures, and this box has two cores for everything."""
    request = _request(batch, api_key)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            begun = time.perf_counter()
            writer.write(request)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - begun)
            if b" 202 " not in status:
                raise RuntimeError(f"POST /tasks answered {status!r}")
    finally:
        writer.close()


async def submit_all(port: int, api_key: str, tasks: int, concurrency: int, batch: int = 1) -> list[float]:
    """POST `tasks` tasks over `concurrency` connections, `batch` per request; request latencies."""
    latencies: list[float] = []
    requests, extra = divmod(tasks // batch, concurrency)
    counts = [requests + (i < extra) for i in range(concurrency)]
    await asyncio.gather(*(_post_loop(port, api_key, count, batch, latencies) for count in counts if count))
    return latencies


async def completed_since(db: asyncpg.Connection, since: float) -> int:
    query = "SELECT count(*) FROM tasks WHERE status = 'COMPLETED' AND created_at >= to_timestamp($1)"
    return int(await db.fetchval(query, since))


async def bench_orchestrator(
    env: dict[str, str], database_url: str, args: argparse.Namespace, log_dir: Path
) -> dict[str, Any]:
    api_key = await issue_key(Settings(database_url=database_url), "bench", Scope.WRITE, LOAD_RATE_LIMIT)
    port = free_port()
    api = Service(
        ["api", "--workers", str(args.api_workers), "--port", str(port)], env, log_dir / "api.log", port
    )
    worker_args = ["worker", "--processes", str(args.processes), "--concurrency", str(args.concurrency)]
    services = [api, Service(worker_args, env, log_dir / "worker.log")]
    for service in services:
        service.start()
    db = await asyncpg.connect(database_url)
    limits = httpx.Limits(max_connections=args.http_concurrency)
    try:
        async with httpx.AsyncClient(
            base_url=api.base_url,
            limits=limits,
            timeout=30,
            headers={"Authorization": f"Bearer {api_key}"},
        ) as client:
            await api.wait_ready(timeout_s=120)
            await submit_all(port, api_key, 100, 10)  # warm-up: connections, prepared statements
            await asyncio.sleep(2)

            profiler = profile(services[1], str(Path(args.profile) / "worker.txt")) if args.profile else None
            wall_start = time.time()
            started = time.perf_counter()
            http_latencies = await submit_all(port, api_key, args.tasks, args.http_concurrency, args.batch)
            submitted = time.perf_counter()
            async with asyncio.timeout(600):
                while await completed_since(db, wall_start) < args.tasks:
                    await asyncio.sleep(0.05)
            finished = time.perf_counter()
            if profiler is not None:
                profiler.terminate()

            await asyncio.sleep(1)
            low_start = time.time()
            for _ in range(args.latency_tasks):
                (await client.post("/tasks", json={"type": "noop"})).raise_for_status()
                await asyncio.sleep(1 / args.latency_rate)
            async with asyncio.timeout(120):
                while await completed_since(db, low_start) < args.latency_tasks:
                    await asyncio.sleep(0.05)
            rows = await db.fetch(
                "SELECT extract(epoch FROM finished_at - created_at) AS s FROM tasks"
                " WHERE created_at >= to_timestamp($1)",
                low_start,
            )
            storage = dict(await db.fetchrow(STORAGE))
    finally:
        await db.close()
        for service in services:
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.stop()
            service.kill_leftovers()
    end_to_end = sorted(float(row["s"]) for row in rows)
    return {
        "throughput": args.tasks / (finished - started),
        "submit_rate": args.tasks / (submitted - started),
        "http_p50_ms": 1000 * statistics.median(http_latencies),
        "http_p99_ms": 1000 * _percentile(sorted(http_latencies), 0.99),
        "e2e_p50_ms": 1000 * statistics.median(end_to_end),
        "e2e_p99_ms": 1000 * _percentile(end_to_end, 0.99),
        "storage": storage,
    }


def profile(service: Service, out: str) -> subprocess.Popen[bytes] | None:
    """py-spy sampling one worker process of `service` for 8 s (Python on the CPU only)."""
    assert service.process is not None
    processes = sorted(children_of(service.process.pid))
    return sample(processes[-1], 8, Path(out)) if processes else None


def _percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


async def main(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="orchestrator-bench-") as scratch,
        embedded_services(Settings(data_dir=Path(scratch))) as servers,
    ):
        redis_url = str(servers.redis_url)
        async with migrated_database(str(servers.database_url), "orchestrator_bench") as database_url:
            env = os.environ | {
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "QUEUE_NAME": f"bench-{uuid.uuid4().hex[:8]}",
                "LOG_LEVEL": "WARNING",
                "TEST_JOB_TYPES": "true",  # the benchmark's job is noop
            }
            raw = await bench_raw_saq(redis_url, args.tasks, args.processes, args.concurrency)
            ours = await bench_orchestrator(env, database_url, args, Path(scratch))
    report(args, raw, ours)


def report(args: argparse.Namespace, raw: float, ours: dict[str, Any]) -> None:
    ratio = ours["throughput"] / raw
    print(f"machine: {os.cpu_count()} CPUs; {args.tasks} tasks, {args.batch} per request")
    print(
        f"worker processes: {args.processes} x {args.concurrency} (both runs); "
        f"API workers: {args.api_workers}"
    )
    print(f"(a) raw SAQ, no-op, no database       {raw:8.0f} jobs/s")
    print(f"(b) orchestrator, HTTP -> COMPLETED   {ours['throughput']:8.0f} tasks/s   b/a = {ratio:.2f}")
    print(
        f"    submitting over HTTP              {ours['submit_rate']:8.0f} tasks/s   request "
        f"p50 {ours['http_p50_ms']:.1f} ms, p99 {ours['http_p99_ms']:.1f} ms"
    )
    print(
        f"(c) submit -> COMPLETED, {args.latency_rate:g} tasks/s: "
        f"p50 {ours['e2e_p50_ms']:.1f} ms, p99 {ours['e2e_p99_ms']:.1f} ms"
    )
    space, tasks = ours["storage"], ours["storage"]["tasks"]
    print(
        f"(d) storage per finished noop task ({tasks} tasks, as autovacuum left them): tasks "
        f"{space['tasks_bytes'] / tasks:.0f} B + indexes {space['tasks_index_bytes'] / tasks:.0f} B; "
        f"{space['events'] / tasks:.1f} task_events rows, {space['events_bytes'] / tasks:.0f} B"
        f" + indexes {space['events_index_bytes'] / tasks:.0f} B"
    )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument(
        "--processes", type=int, default=os.cpu_count() or 1, help="worker processes (both runs)"
    )
    parser.add_argument("--concurrency", type=int, default=20, help="jobs at once per worker process")
    parser.add_argument("--api-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--http-concurrency", type=int, default=50)
    parser.add_argument("--batch", type=int, default=1, help="tasks per request (>1: POST /tasks/batch)")
    parser.add_argument("--latency-tasks", type=int, default=200)
    parser.add_argument("--profile", metavar="DIR", help="sample one job worker process with py-spy into DIR")
    parser.add_argument("--latency-rate", type=float, default=20.0, help="submissions per second for (c)")
    return parser.parse_args()


if __name__ == "__main__":
    uvloop.run(main(parse()))
