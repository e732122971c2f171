"""One load run: start the stack, Locust headless (and the faults), drain, verify, report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from load import API_KEY_ENV
from load.ledger import Ledger
from load.memory import growth, sample_every
from load.receivers import receivers
from load.report import build_summary, missed, render
from load.stack import Stack, break_things
from load.verify import database_now, verify, wait_drained
from orchestrator.settings import Settings

if TYPE_CHECKING:
    import argparse

    from load.report import Thresholds
    from load.stack import Fault
    from load.verify import Verdict

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def locust_command(args: argparse.Namespace, host: str, out: Path) -> list[str]:
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "--host", host, "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
        "--run-time", f"{int(args.duration)}s", "--stop-timeout", "15",
        "--csv", str(out / "locust"), "--html", str(out / "report.html"),
        "--ledger", str(out / "ledger.jsonl"), "--summary-json", str(out / "locust-summary.json"),
        "--think-time", args.think_time, "--task-timeout", str(args.task_timeout),
        # Failed requests are the report's to judge (restarts drop connections on purpose), so
        # any other exit code means Locust itself broke.
        "--exit-code-on-error", "0",
    ]  # fmt: skip
    if args.tags:
        command += ["--tags", *args.tags]
    if args.exclude_tags:
        command += ["--exclude-tags", *args.exclude_tags]
    return command


async def run_load_test(args: argparse.Namespace, thresholds: Thresholds) -> int:
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with receivers(out / "effects.jsonl") as third_parties:
        stack, locust_code, still_open, verdict, faults = await _run(args, out, third_parties)
    locust_summary = out / "locust-summary.json"
    if not locust_summary.exists():
        print(f"Locust wrote no summary (exit {locust_code}); see {out / 'locust.log'}")
        return 1
    run = {
        "scenario": args.scenario,
        "users": args.users,
        "spawn_rate": args.spawn_rate,
        "duration_s": args.duration,
        "think_time_s": args.think_time,
        "servers": _servers(stack),
        "locust_exit_code": locust_code,
        "open_tasks_after_drain": still_open,
        "memory": growth(out / "memory.jsonl", args.duration),
    }
    summary = build_summary(run, json.loads(locust_summary.read_text()), verdict, faults)
    reasons = missed(summary, thresholds)
    summary["passed"], summary["missed"] = not reasons, reasons
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    text = render(summary, reasons)
    (out / "summary.txt").write_text(text + "\n")
    print(text)
    return 0 if not reasons else 1


async def _run(
    args: argparse.Namespace, out: Path, third_parties: dict[str, str]
) -> tuple[Stack, int, int, Verdict, list[Fault]]:
    cpus = os.cpu_count() or 1
    stack = Stack(
        Settings(), out, args.api_workers or cpus, args.worker_processes or cpus, third_parties, args.metrics
    )
    faults: list[Fault] = []
    locust: asyncio.subprocess.Process | None = None
    print(f"load test ({args.scenario}): starting the service; reports in {out}", flush=True)
    try:
        await asyncio.to_thread(stack.start_servers)
        await stack.start_service()
        api_key = await stack.issue_api_key()
        since = await database_now(stack.database_url)
        print(f"  {args.users} users for {args.duration:.0f} s against {stack.base_url}", flush=True)
        memory = asyncio.create_task(sample_every(lambda: stack.up_pid, out / "memory.jsonl"))
        with (out / "locust.log").open("wb") as log:
            locust = await asyncio.create_subprocess_exec(
                *locust_command(args, stack.base_url, out),
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=os.environ | {"LOAD_WEIGHTS": args.weights, API_KEY_ENV: api_key},
            )
            chaos = (
                asyncio.create_task(break_things(stack, args.duration, faults))
                if args.scenario == "restart"
                else None
            )
            locust_code = await locust.wait()
        await stack.save_metrics(out / "metrics.txt")
        if chaos is not None:
            await chaos
        memory.cancel()
        print(f"  Locust exited {locust_code}; waiting for open tasks to finish", flush=True)
        still_open = await wait_drained(stack.database_url, since, args.drain_timeout)
        await stack.stop_service()
        # The service has stopped: every email and push its jobs made has reached the receivers.
        ledger = Ledger.read(out / "ledger.jsonl")
        verdict = await verify(stack.database_url, ledger, since, out / "effects.jsonl")
        await stack.revoke_api_key()  # on a shared database, no live key is left behind
    finally:
        stack.close()
        if locust is not None and locust.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                locust.kill()
    return stack, locust_code, still_open, verdict, faults


def _servers(stack: Stack) -> str:
    postgres = "embedded PostgreSQL" if stack.owns_postgres else "PostgreSQL at DATABASE_URL"
    redis = "embedded Redis" if stack.owns_redis else "Redis at REDIS_URL"
    return f"{postgres}, {redis}"
