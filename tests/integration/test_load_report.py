"""The load run fails on what Locust's own figures hide: a check that raised, Locust's exit code,
an empty ledger."""

from __future__ import annotations

import json
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from load.report import Thresholds, build_summary, missed
from load.verify import Verdict
from tests.helpers import serving

if TYPE_CHECKING:
    from collections.abc import Iterator

THRESHOLDS = Thresholds(max_p99_ms=60_000, connection_errors_allowed=False)
RUN = {"scenario": "plain", "locust_exit_code": 0}


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), _Ok)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def clean_locust() -> dict[str, Any]:
    """A Locust summary of a run where nothing went wrong, as the suite's summary writes it."""
    summary: dict[str, Any] = {
        "http": {"requests": 10, "failures": 0, "avg_ms": 1.0, "max_ms": 2.0, "p50_ms": 1, "p95_ms": 2}
        | {"p99_ms": 2, "rps": 5.0, "seconds": 2.0},
        "tasks": {"requests": 0, "failures": 0, "avg_ms": 0, "max_ms": 0, "p50_ms": 0, "p95_ms": 0}
        | {"p99_ms": 0},
        "connection_errors": 0,
        "failures_by_kind": {},
        "exceptions": [],
        "unhandled_greenlet_exception": False,
        "errors": [],
        "by_name": {},
    }
    return summary


def judged(run: dict[str, Any], locust: dict[str, Any], verdict: Verdict) -> list[str]:
    return missed(build_summary(run, locust, verdict, []), THRESHOLDS)


def test_a_check_that_raises_after_its_request_passed_fails_the_run(site: str, tmp_path: Path) -> None:
    out = tmp_path / "locust-summary.json"
    users = Path(__file__).parents[1] / "load_users" / "raising.py"
    command = [
        sys.executable, "-m", "locust", "-f", str(users), "--headless", "--only-summary",
        "--host", site, "--users", "1", "--spawn-rate", "1", "--run-time", "2s",
        "--exit-code-on-error", "0", "--summary-json", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    locust = json.loads(out.read_text())

    assert locust["http"]["failures"] == 0  # Locust's own figures see nothing wrong
    assert locust["exceptions"][0]["count"] >= 1
    reasons = judged(RUN, locust, Verdict(acknowledged_writes=1))
    assert len(reasons) == 1
    assert "exceptions in the users' checks" in reasons[0]
    assert "a check that broke after its request passed" in reasons[0]


def test_a_clean_run_passes(clean_locust: dict[str, Any]) -> None:
    assert judged(RUN, clean_locust, Verdict(acknowledged_writes=1)) == []


def test_a_run_whose_locust_broke_fails(clean_locust: dict[str, Any]) -> None:
    reasons = judged(RUN | {"locust_exit_code": 2}, clean_locust, Verdict(tasks_accepted=1))
    assert reasons == ["Locust exited 2 (see locust.log)"]


def test_a_run_that_recorded_nothing_to_verify_fails(clean_locust: dict[str, Any]) -> None:
    reasons = judged(RUN, clean_locust, Verdict())
    assert reasons == ["the ledger is empty: no acknowledged write or task to verify"]


def test_a_run_whose_locust_greenlet_crashed_fails(clean_locust: dict[str, Any]) -> None:
    reasons = judged(RUN, clean_locust | {"unhandled_greenlet_exception": True}, Verdict(tasks_accepted=1))
    assert reasons == ["a Locust greenlet crashed (see locust.log)"]
