"""Resident memory of the service's processes during a load run: each API worker's and each job
worker process's, sampled every few seconds. A leak shows as growth after the warm-up, so the
report compares the sample nearest to minute 2 (a fifth of a shorter run) with the last."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

MIB = 1024 * 1024
WARM_S = 120.0


def kind_of(process: psutil.Process) -> str | None:
    """A job worker process (spawned by multiprocessing), an API worker (a Granian worker, forked
    with its parent's command line), or neither (managers, trackers)."""
    try:
        command = " ".join(process.cmdline())
        if "resource_tracker" in command or process.children():
            return None
        if "multiprocessing" in command:
            return "job worker"
        return "API worker"
    except psutil.Error:
        return None


def sample(root_pid: int) -> dict[str, list[float]]:
    """RSS in MiB of each API worker and job worker under `root_pid`."""
    found: dict[str, list[float]] = {"API worker": [], "job worker": []}
    with contextlib.suppress(psutil.Error):
        for process in psutil.Process(root_pid).children(recursive=True):
            if (kind := kind_of(process)) is not None:
                with contextlib.suppress(psutil.Error):
                    found[kind].append(process.memory_info().rss / MIB)
    return found


async def sample_every(root_pid: Callable[[], int], path: Path, every_s: float = 10.0) -> None:
    """Append a sample to `path` (JSON lines) every `every_s` until cancelled; `root_pid` is
    asked each time (a restart scenario replaces the service)."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(RuntimeError):  # between a stop and a start
            line = {"at_s": round(time.monotonic() - started, 1), **sample(root_pid())}
            with path.open("a") as out:
                out.write(json.dumps(line) + "\n")
        await asyncio.sleep(every_s)


def growth(path: Path, duration_s: float) -> dict[str, Any]:
    """Per kind: the largest process's RSS after the warm-up and at the end, and the change."""
    if not path.exists():
        return {}
    samples = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    warm_at = min(WARM_S, duration_s / 5)
    report: dict[str, Any] = {}
    for kind in ("API worker", "job worker"):
        taken = [(s["at_s"], max(s[kind])) for s in samples if s.get(kind)]
        if not taken:
            continue
        warm = min(taken, key=lambda pair: abs(pair[0] - warm_at))
        last = taken[-1]
        report[kind] = {
            "warm_at_s": warm[0],
            "warm_mib": round(warm[1], 1),
            "end_at_s": last[0],
            "end_mib": round(last[1], 1),
            "growth_pct": round(100 * (last[1] - warm[1]) / warm[1], 1),
        }
    return report
