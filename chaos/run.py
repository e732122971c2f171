"""One run: the cluster up, the service on its hosts, Locust on the client host against both API
hosts, the nemesis for the run's length, every fault healed, the history checked, a table.

    python -m chaos --duration 600 --seed 7 --out chaos-results      (or `make chaos`)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from chaos.check import check, client_anomalies
from chaos.cluster import Cluster, can_run
from chaos.hosts import API_HOSTS, LEASE_S, TIMINGS, WORKER_HOSTS, Hosts
from chaos.nemesis import Nemesis
from load.ledger import Ledger
from load.verify import database_now, wait_drained

if TYPE_CHECKING:
    import argparse
    import subprocess

    from chaos.check import History

LOCUSTFILE = Path(__file__).resolve().parents[1] / "load" / "locustfile.py"
# After the last fault: the reconciler's grace and a lease, then the queue must drain.
SETTLE_S = LEASE_S + float(TIMINGS["RECONCILE_GRACE_S"]) + 2
DRAIN_TIMEOUT_S = 180.0


def _locust(hosts: Hosts, api_host: str, args: argparse.Namespace, out: Path) -> subprocess.Popen[bytes]:
    name = f"locust-{api_host}"
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "--host", hosts.api_url(api_host), "--users", str(args.users), "--spawn-rate", str(args.users),
        "--run-time", f"{int(args.duration)}s", "--stop-timeout", "20", "--api-key", hosts.api_key,
        "--ledger", str(out / f"ledger-{api_host}.jsonl"), "--summary-json", str(out / f"{name}.json"),
        "--think-time", "0.05:0.3", "--task-timeout", "60", "--exit-code-on-error", "0",
    ]  # fmt: skip
    # Many noop tasks, each sleeping up to 4 s, so that a paused or cut-off worker holds some
    # that its successor is still running when it comes back: a zombie's chance to write.
    env = os.environ | {"LOAD_NOOP_SLEEP_S": "4", "LOAD_WEIGHTS": "noop=6"}
    return hosts.cluster.start("client", command, out / f"{name}.log", env)


async def run(args: argparse.Namespace) -> int:
    if (reason := can_run()) is not None:
        print(f"chaos: cannot run here: {reason}", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # SIGTERM (a timeout, CI giving up) ends the run like Ctrl-C: everything it started goes.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    hosts = Hosts(Cluster(), out)
    try:
        hosts.cluster.up()
        hosts.start_servers()
        await hosts.prepare_database()
        for host in (*API_HOSTS, *WORKER_HOSTS):
            hosts.start(host)
        await hosts.wait_ready()
        since = await database_now(hosts.database_url)
        clients = [_locust(hosts, host, args, out) for host in API_HOSTS]
        nemesis = Nemesis(hosts, args.seed)
        nemesis.began = asyncio.get_running_loop().time()
        if args.each_fault_once:
            await nemesis.run_each_once()
        else:
            await nemesis.run(args.duration)
        await nemesis.heal()
        (out / "nemesis.log").write_text("\n".join(nemesis.log) + "\n")
        await hosts.wait_ready()
        exit_codes = {
            f"locust-{host}": await asyncio.to_thread(client.wait, args.duration + 120)
            for host, client in zip(API_HOSTS, clients, strict=True)
        }
        await asyncio.sleep(SETTLE_S)
        still_open = await wait_drained(hosts.database_url, since, DRAIN_TIMEOUT_S)
        history = await check(hosts.database_url, _ledger(out), since, out / "effects.jsonl", keep=out)
        summaries = {
            name: json.loads((out / f"{name}.json").read_text())
            for name in exit_codes
            if (out / f"{name}.json").exists()
        }
        history.client.update(client_anomalies(summaries, exit_codes))
    finally:
        hosts.stop()
    print(render(args, nemesis, history, still_open))
    (out / "history.json").write_text(json.dumps(_summary(args, nemesis, history), indent=2, default=str))
    return 0 if history.ok else 1


def _ledger(out: Path) -> Ledger:
    return Ledger.read(*sorted(out.glob("ledger-*.jsonl")))


def _summary(args: argparse.Namespace, nemesis: Nemesis, history: History) -> dict[str, object]:
    verdict = history.verdict
    return {
        "seed": args.seed,
        "duration_s": args.duration,
        "faults": dict(nemesis.injected),
        "acknowledged_writes": verdict.acknowledged_writes,
        "tasks_accepted": verdict.tasks_accepted,
        "tasks_in_run": verdict.tasks_in_run,
        "tasks_terminal": verdict.tasks_terminal,
        "failed_after_lost_attempts": history.failed_after_lost_attempts,
        "emails_received": verdict.emails_received,
        "crm_pushes_received": verdict.crm_pushes_received,
        "sent_again_after_a_lost_attempt": verdict.repeated_after_a_lost_attempt,
        "anomalies": history.anomalies(),
    }


def render(args: argparse.Namespace, nemesis: Nemesis, history: History, still_open: int) -> str:
    verdict = history.verdict
    sent_again = verdict.repeated_after_a_lost_attempt
    lines = [
        f"chaos run: {args.duration:g} s, seed {args.seed}",
        "",
        "| fault | injected |",
        "|---|---|",
        *(f"| {name} | {count} |" for name, count in sorted(nemesis.injected.items())),
        "",
        "| operations | count |",
        "|---|---|",
        f"| acknowledged lead writes | {verdict.acknowledged_writes} |",
        f"| tasks accepted (202) | {verdict.tasks_accepted} |",
        f"| tasks in the run (workflow steps included) | {verdict.tasks_in_run} |",
        f"| tasks in a terminal state | {verdict.tasks_terminal} |",
        f"| tasks FAILED after every attempt was lost | {len(history.failed_after_lost_attempts)} |",
        f"| emails received | {verdict.emails_received} |",
        f"| CRM pushes received | {verdict.crm_pushes_received} |",
        f"| emails sent again after a lost attempt (a documented limit) | {len(sent_again)} |",
        f"| tasks still open when the drain gave up | {still_open} |",
        "",
        "| anomaly | count |",
        "|---|---|",
        *(f"| {name} | {len(found)} |" for name, found in history.anomalies().items()),
    ]
    for name, found in history.anomalies().items():
        for example in found[:5]:
            lines.append(f"  {name}: {example}")
    lines.append("")
    lines.append("PASS: no anomaly" if history.ok else "FAIL: anomalies above")
    return "\n".join(lines)


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=_seconds, default=600.0, help="of faults: 600, 600s, 10m or 1h")
    parser.add_argument(
        "--seed", type=int, default=1, help="the nemesis's choices; the same seed replays them"
    )
    parser.add_argument("--users", type=int, default=8, help="Locust users per API host")
    parser.add_argument(
        "--each-fault-once", action="store_true", help="every fault once, in a fixed order (the CI run)"
    )
    parser.add_argument("--out", default="chaos-results", help="where the history and the logs go")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(args))
    return 130
