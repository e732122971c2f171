"""The one-screen summary of a load run, and the thresholds that pass or fail it."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from load.stack import Fault
    from load.verify import Verdict


@dataclass
class Thresholds:
    max_p99_ms: float
    # The restart scenario drops connections on purpose; users retry them. Anything else fails.
    connection_errors_allowed: bool


def build_summary(
    run: dict[str, Any], locust: dict[str, Any], verdict: Verdict, faults: list[Fault]
) -> dict[str, Any]:
    http = locust["http"]
    answered = http["requests"] - locust["connection_errors"]
    failed_answers = http["failures"] - locust["connection_errors"]
    return {
        "run": run | {"cpus": os.cpu_count()},
        "http": http
        | {
            "pass_rate": 1 - http["failures"] / http["requests"] if http["requests"] else 0.0,
            "answered_pass_rate": 1 - failed_answers / answered if answered else 0.0,
            "connection_errors": locust["connection_errors"],
            "per_minute": http["rps"] * 60,
        },
        "tasks": locust["tasks"],
        "failures_by_kind": locust["failures_by_kind"],
        "errors": locust["errors"],
        "exceptions": locust["exceptions"],
        "unhandled_greenlet_exception": locust["unhandled_greenlet_exception"],
        "by_name": locust["by_name"],
        "verification": asdict(verdict) | {"ok": verdict.ok},
        "faults": [asdict(fault) for fault in faults],
    }


def missed(summary: dict[str, Any], thresholds: Thresholds) -> list[str]:
    """Every threshold the run missed; empty means it passed."""
    http, verification = summary["http"], summary["verification"]
    reasons = []
    if summary["run"]["locust_exit_code"] != 0:
        reasons.append(f"Locust exited {summary['run']['locust_exit_code']} (see locust.log)")
    if http["requests"] == 0:
        reasons.append("no request was made")
    if verification["acknowledged_writes"] == 0 and verification["tasks_accepted"] == 0:
        reasons.append("the ledger is empty: no acknowledged write or task to verify")
    if summary["unhandled_greenlet_exception"]:
        reasons.append("a Locust greenlet crashed (see locust.log)")
    if exceptions := summary["exceptions"]:
        count = sum(row["count"] for row in exceptions)
        reasons.append(f"{count} exceptions in the users' checks, e.g. {exceptions[0]['error'][:200]}")
    if http["failures"] - http["connection_errors"]:
        reasons.append(
            f"{http['failures'] - http['connection_errors']} requests failed (not connection errors)"
        )
    if http["connection_errors"] and not thresholds.connection_errors_allowed:
        reasons.append(f"{http['connection_errors']} connection errors")
    if http["p99_ms"] > thresholds.max_p99_ms:
        reasons.append(f"HTTP p99 {http['p99_ms']:.0f} ms > {thresholds.max_p99_ms:.0f} ms")
    if summary["tasks"]["failures"]:
        reasons.append(f"{summary['tasks']['failures']} tasks failed or did not finish in time")
    for name in (
        "lost_writes",
        "lost_tasks",
        "unfinished_tasks",
        "failed_tasks",
        "completed_twice",
        "lost_effects",
        "repeated_effects",
    ):
        if verification[name]:
            reasons.append(
                f"{len(verification[name])} {name.replace('_', ' ')}, e.g. {verification[name][0]}"
            )
    return reasons


def render(summary: dict[str, Any], reasons: list[str]) -> str:
    run, http, tasks, checked = summary["run"], summary["http"], summary["tasks"], summary["verification"]
    kinds = ", ".join(f"{kind} {count}" for kind, count in summary["failures_by_kind"].items()) or "none"
    lines = [
        f"orchestrator load test: {run['scenario']}, {run['users']} users (spawn {run['spawn_rate']:g}/s), "
        f"{run['duration_s']:.0f} s, {run['cpus']} CPUs, {run['servers']}",
        f"  HTTP requests    {http['requests']:,}  ({http['rps']:,.1f}/s, {http['per_minute']:,.0f}/min)",
        f"  pass rate        {http['answered_pass_rate']:.2%} of the answered requests; "
        f"{http['pass_rate']:.2%} counting connection errors",
        f"  failures         {kinds}; connection errors {http['connection_errors']:,} (refused while the "
        "service was down, each retried by its user)",
        f"  response time    avg {http['avg_ms']:.1f} ms, p50 {http['p50_ms']:.0f}, "
        f"p95 {http['p95_ms']:.0f}, p99 {http['p99_ms']:.0f}, max {http['max_ms']:.0f} ms",
        f"  tasks            {checked['tasks_accepted']:,} submitted by users; in the run "
        f"{checked['tasks_in_run']:,} (lead syncs and workflow steps too), "
        f"{checked['tasks_terminal']:,} terminal",
        f"  task end-to-end  avg {tasks['avg_ms']:.0f} ms, p50 {tasks['p50_ms']:.0f}, "
        f"p99 {tasks['p99_ms']:.0f}, max {tasks['max_ms']:.0f} ms (submit to COMPLETED, polled)",
        f"  PostgreSQL       {checked['acknowledged_writes']:,} acknowledged writes to "
        f"{checked['leads_checked']:,} leads, {len(checked['lost_writes'])} lost; tasks lost "
        f"{len(checked['lost_tasks'])}, unfinished {len(checked['unfinished_tasks'])}, failed "
        f"{len(checked['failed_tasks'])}, completed twice {len(checked['completed_twice'])}",
        f"  side effects     {checked['emails_received']:,} emails and {checked['crm_pushes_received']:,} "
        f"CRM pushes received; missing {len(checked['lost_effects'])}, repeated "
        f"{len(checked['repeated_effects'])} (and {len(checked['repeated_after_a_lost_attempt'])} "
        "emails sent again after an attempt was lost, as the limits allow)",
    ]
    lines += [
        f"  memory           {kind} RSS {m['warm_mib']:.0f} MiB at {m['warm_at_s']:.0f} s, "
        f"{m['end_mib']:.0f} MiB at {m['end_at_s']:.0f} s ({m['growth_pct']:+.1f}%; the largest process)"
        for kind, m in run.get("memory", {}).items()
    ]
    lines += [
        f"  fault at {f['at_s']:5.1f} s  {f['what']} ({f['detail']}; {f['took_s']} s)"
        for f in summary["faults"]
    ]
    lines += [
        f"  error x{e['count']}: {e['method']} {e['name']}: {e['error'][:160]}" for e in summary["errors"][:8]
    ]
    lines.append("PASS" if not reasons else "FAIL: " + "; ".join(reasons))
    return "\n".join(lines)
