"""A Locust run's figures, JSON-ready: HTTP and task percentiles, and every failure by kind.

Only the locustfile imports this: importing locust patches the whole process for gevent,
which the asyncio runner (load/run.py, load/report.py) must never get.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from locust import log
from locust.stats import StatsEntry

if TYPE_CHECKING:
    from locust.env import Environment

# The users put this in the failure message of every connection error; the summary counts by it.
CONNECTION_ERROR = "connection error"


def summarise(environment: Environment) -> dict[str, Any]:
    """HTTP figures (the TASK lines excluded), task figures, and every failure by kind."""
    stats = environment.stats
    http = StatsEntry(stats, "HTTP", "")
    tasks = StatsEntry(stats, "TASK", "")
    for entry in stats.entries.values():
        (tasks if entry.method == "TASK" else http).extend(entry)
    failures: dict[str, int] = {}
    connection_errors = 0
    for error in stats.errors.values():
        text = str(error.error)
        if CONNECTION_ERROR in text:
            connection_errors += error.occurrences
        kind = (
            "connection"
            if CONNECTION_ERROR in text
            else "mismatch"
            if "mismatch" in text
            else "task"
            if error.method == "TASK"
            else "status"
        )
        failures[kind] = failures.get(kind, 0) + error.occurrences
    # A check that raised (after its request was already marked a success) is no failure in
    # Locust's figures, only here.
    runner = environment.runner
    exceptions = [
        {"count": row["count"], "error": str(row["msg"]), "where": str(row["traceback"]).strip()[-600:]}
        for row in (runner.exceptions.values() if runner is not None else [])
    ]
    seconds = max(http.last_request_timestamp - http.start_time, 1e-9) if http.last_request_timestamp else 0
    return {
        "http": figures(http) | {"rps": http.num_requests / seconds if seconds else 0.0, "seconds": seconds},
        "tasks": figures(tasks),
        "connection_errors": connection_errors,
        "failures_by_kind": failures,
        "exceptions": exceptions,
        # Locust exits 0 for this too when requests also failed (--exit-code-on-error 0).
        "unhandled_greenlet_exception": bool(log.unhandled_greenlet_exception),
        "errors": [
            {"method": e.method, "name": e.name, "error": str(e.error), "count": e.occurrences}
            for e in sorted(stats.errors.values(), key=lambda e: -e.occurrences)[:50]
        ],
        "by_name": {
            f"{e.method} {e.name}": {"requests": e.num_requests, "failures": e.num_failures, **percentiles(e)}
            for e in stats.entries.values()
        },
    }


def figures(entry: StatsEntry) -> dict[str, Any]:
    return {
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "avg_ms": entry.avg_response_time,
        "max_ms": entry.max_response_time,
        **percentiles(entry),
    }


def percentiles(entry: StatsEntry) -> dict[str, float]:
    if not entry.num_requests:
        return {"p50_ms": 0, "p95_ms": 0, "p99_ms": 0}
    return {f"p{p}_ms": entry.get_response_time_percentile(p / 100) for p in (50, 95, 99)}
