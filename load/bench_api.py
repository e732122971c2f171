"""API throughput against an equal-work raw handler, both driven by wrk in the same run.

    uv run python -m load.bench_api [--duration 10] [--connections 64] [--rounds 2]

Starts the equal-work baseline (`load/raw_api.py`: plain Litestar handlers on raw asyncpg, the
same statements' worth of work and the same Redis calls) and the service's API, with the same
Granian settings and worker count, on one throw-away database (DATABASE_URL / REDIS_URL when
set, else embedded servers in a temporary folder). Each route is driven by wrk against one,
then the other, `--rounds` times; each figure is the median of its rounds. Printed: requests
per second, p50 / p99, the ratio, and the CPU seconds the servers and the load generator used
(the generator must cost less than what it measures). Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import uvloop

from load.databases import migrated_database
from load.service import Service, children_of, free_port
from orchestrator.auth.keys import issue_key
from orchestrator.auth.models import Scope
from orchestrator.embedded import embedded_services
from orchestrator.settings import Settings

ROUTES = ("create", "replace", "get", "submit")
LABELS = {
    "create": "POST /leads",
    "replace": "PUT /leads/{id}",
    "get": "GET /leads/{id}",
    "submit": "POST /tasks",
}
# Far above what two cores serve: the limit is counted (one Redis script per request, as an
# integrator's key is), never reached.
RATE_LIMIT = "100000/second"
SCRIPT = Path(__file__).with_name("bench_api.lua")
# Python's time on the CPU (holding the GIL), without pausing the worker it samples.
PY_SPY = "record --nonblocking --gil --format raw --rate 250 --duration"
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Figure:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_s: float
    wrk_cpu_s: float


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and of its children, alive or ended and waited for."""
    total = 0.0
    for each in (pid, *children_of(pid)):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rpartition(")")[2].split()
            total += sum(int(value) for value in fields[11:15]) / TICKS
    return total


def sample(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling one process for `seconds` (from the dev dependencies)."""
    command = [shutil.which("py-spy") or "py-spy", *PY_SPY.split(), str(seconds)]
    return subprocess.Popen(
        [*command, "--pid", str(pid), "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def drive(port: int, route: str, args: argparse.Namespace, env: dict[str, str], server_pid: int) -> Figure:
    command = [
        "wrk",
        f"--threads={args.threads}",
        f"--connections={args.connections}",
        f"--duration={args.duration}s",
        "--timeout=10s",
        f"--script={SCRIPT}",
        f"http://127.0.0.1:{port}",
    ]
    env = env | {"BENCH_ROUTE": route, "BENCH_RUN": uuid.uuid4().hex[:10]}
    workers = sorted(children_of(server_pid))
    profiler = (
        sample(workers[0], args.duration - 1, Path(args.profile) / f"{route}-{port}.txt")
        if args.profile and args.duration > 2 and workers
        else None
    )
    server_before = cpu_seconds(server_pid)
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, check=True, timeout=args.duration + 60
    )
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = cpu_seconds(server_pid) - server_before
    if profiler is not None:
        profiler.wait(30)
    line = next((line for line in done.stdout.splitlines() if line.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures:\n{done.stdout}\n{done.stderr}")
    result = json.loads(line.removeprefix("BENCH "))
    for refused in (line for line in done.stdout.splitlines() if line.startswith("REFUSED ")):
        print(f"    {refused}", flush=True)
    return Figure(
        rps=result["requests"] / (result["duration_us"] / 1e6),
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        errors=result["errors"] + result["status_errors"],
        server_cpu_s=server_cpu,
        wrk_cpu_s=(wrk_after.ru_utime + wrk_after.ru_stime) - (wrk_before.ru_utime + wrk_before.ru_stime),
    )


async def seed_leads(database_url: str, count: int, path: Path) -> None:
    """Leads for the PUTs and GETs to pick from, at random."""
    db = await asyncpg.connect(database_url)
    try:
        rows = await db.fetch(
            "INSERT INTO leads (id, first_name, email, version)"
            " SELECT gen_random_uuid(), 'Seed', 'seed-' || n || '@example.com', 1"
            " FROM generate_series(1, $1) AS n RETURNING id",
            count,
        )
    finally:
        await db.close()
    path.write_text("".join(f"{row['id']}\n" for row in rows))


def start_raw(port: int, workers: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "load.raw_api", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def wait_serving(port: int, path: str, key: str, log: Path, timeout_s: float = 120) -> None:
    answer = "no answer"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                response = await client.get(path, headers={"Authorization": f"Bearer {key}"})
                if response.status_code == 200:
                    return
                answer = f"{response.status_code} {response.text[:200]}"
            await asyncio.sleep(0.2)
    raise RuntimeError(
        f"the server on port {port} did not serve {path} ({answer}):\n{log.read_text()[-3000:]}"
    )


async def bench(args: argparse.Namespace, scratch: Path) -> dict[str, dict[str, list[Figure]]]:
    with embedded_services(Settings(data_dir=scratch)) as servers:
        async with migrated_database(str(servers.database_url), "orchestrator_bench") as database_url:
            key = await issue_key(Settings(database_url=database_url), "bench", Scope.WRITE, RATE_LIMIT)
            ids = scratch / "lead-ids"
            await seed_leads(database_url, args.leads, ids)
            a_lead = ids.read_text().split()[0]
            env = os.environ | {
                "DATABASE_URL": database_url,
                "REDIS_URL": str(servers.redis_url),
                "QUEUE_NAME": f"bench-{uuid.uuid4().hex[:8]}",
                "LOG_LEVEL": "WARNING",
                "TEST_JOB_TYPES": "true",  # POST /tasks submits noop
            }
            wrk_env = env | {"BENCH_KEY": key, "BENCH_IDS": str(ids)}
            raw_port = free_port()
            raw = start_raw(raw_port, args.api_workers, env, scratch / "raw.log")
            # Ours as deployed (its metrics on) and, to state what they cost, with them off.
            variants = {"orchestrator": str(free_port())} | ({"no metrics": "0"} if args.metrics_cost else {})
            ours: dict[str, Service] = {}
            for name, metrics_port in variants.items():
                port = free_port()
                arguments = ["api", "--workers", str(args.api_workers), "--port", str(port)]
                log = scratch / f"api-{name.replace(' ', '-')}.log"
                ours[name] = Service(arguments, env | {"METRICS_PORT": metrics_port}, log, port)
                ours[name].start()
            servers_under_test = {"raw": (raw_port, raw.pid)} | {
                name: (service.port or 0, service.process.pid if service.process else 0)
                for name, service in ours.items()
            }
            logs = {"raw": scratch / "raw.log"} | {name: service.log for name, service in ours.items()}
            try:
                for name, (port, _) in servers_under_test.items():
                    await wait_serving(port, f"/leads/{a_lead}", key, logs[name])
                figures: dict[str, dict[str, list[Figure]]] = {
                    route: {name: [] for name in servers_under_test} for route in args.routes
                }
                for route in args.routes:
                    for _ in range(args.rounds):
                        for name, (port, pid) in servers_under_test.items():
                            warm = argparse.Namespace(**vars(args) | {"duration": 2})
                            drive(port, route, warm, wrk_env, pid)
                            figure = drive(port, route, args, wrk_env, pid)
                            figures[route][name].append(figure)
                            print(f"  {LABELS[route]:16} {name:12} {figure.rps:7.0f} req/s", flush=True)
                return figures
            finally:
                raw.terminate()
                for service in ours.values():
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        service.stop()
                    service.kill_leftovers()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    raw.wait(30)


def report(args: argparse.Namespace, figures: dict[str, dict[str, list[Figure]]]) -> None:
    print(
        f"\nmachine: {os.cpu_count()} CPUs; {args.api_workers} Granian workers each;"
        f" wrk {args.threads} threads, {args.connections} connections,"
        f" {args.duration} s x {args.rounds} rounds (medians)"
    )
    print(
        f"{'route':16} {'raw req/s':>10} {'ours req/s':>10} {'ratio':>6}"
        f"   {'raw p50/p99 ms':>15} {'ours p50/p99 ms':>16}   cpu s: raw / ours / wrk"
    )
    for route, by_server in figures.items():
        raw, ours = (_median(by_server[name]) for name in ("raw", "orchestrator"))
        print(
            f"{LABELS[route]:16} {raw.rps:10.0f} {ours.rps:10.0f} {ours.rps / raw.rps:6.2f}"
            f"   {raw.p50_ms:7.1f}/{raw.p99_ms:<7.1f} {ours.p50_ms:8.1f}/{ours.p99_ms:<7.1f}"
            f"   {raw.server_cpu_s:.1f} / {ours.server_cpu_s:.1f} / {max(raw.wrk_cpu_s, ours.wrk_cpu_s):.1f}"
        )
        if raw.errors or ours.errors:
            print(f"  errors (non-2xx or socket): raw {raw.errors}, ours {ours.errors}")
        if "no metrics" in by_server:
            bare = _median(by_server["no metrics"])
            cost = ours.rps / bare.rps
            print(f"  {'':14} metrics off: {bare.rps:.0f} req/s; with metrics / without = {cost:.2f}")


def _median(figures: list[Figure]) -> Figure:
    return Figure(
        *(
            statistics.median(getattr(figure, name) for figure in figures)
            for name in Figure.__dataclass_fields__
        )
    )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each server per route")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--api-workers", type=int, default=os.cpu_count() or 1, help="Granian workers, each server"
    )
    parser.add_argument("--leads", type=int, default=5000, help="leads for the PUTs and GETs to pick from")
    parser.add_argument(
        "--profile", metavar="DIR", help="sample one API worker of each server with py-spy into DIR"
    )
    parser.add_argument(
        "--metrics-cost",
        action="store_true",
        help="also run ours with METRICS_PORT=0, to state what metrics cost",
    )
    parser.add_argument(
        "--routes", type=lambda value: value.split(","), default=list(ROUTES), help=",".join(ROUTES)
    )
    return parser.parse_args()


def main() -> None:
    args = parse()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (Debian: apt-get install wrk)")
    if unknown := set(args.routes) - set(ROUTES):
        sys.exit(f"unknown routes: {', '.join(sorted(unknown))}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="orchestrator-bench-api-") as scratch:
        figures = uvloop.run(bench(args, Path(scratch)))
    report(args, figures)
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
