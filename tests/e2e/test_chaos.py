"""The short chaos run CI makes on every change: the cluster of network namespaces, every fault
of the nemesis once in a fixed order under load, then the history checked (`make chaos` runs
the long one, with faults at random)."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from chaos.cluster import can_run
from chaos.pgbouncer import installed

DURATION = os.environ.get("CHAOS_DURATION") or "90"


@pytest.mark.timeout(900)
async def test_every_fault_once_leaves_no_anomaly(tmp_path):
    reason = can_run() or (None if installed() else "pgbouncer is missing")
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the chaos run cannot run: {reason} (.ci/system-packages installs what it needs)")
        pytest.skip(f"the chaos run cannot run here: {reason}")
    out = tmp_path / "chaos"
    run = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chaos", "--duration", DURATION, "--seed", "1", "--each-fault-once",
        "--users", "5", "--out", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(run.communicate(), timeout=850)
    except TimeoutError:
        run.terminate()  # the run removes its hosts on SIGTERM
        await asyncio.wait_for(run.wait(), timeout=60)
        raise
    text = output.decode()
    assert run.returncode == 0, text[-8000:]
    history = json.loads((out / "history.json").read_text())
    assert not any(history["anomalies"].values()), text[-8000:]
    assert len(history["faults"]) == 10, history["faults"]  # every kind of fault was injected
    assert history["acknowledged_writes"] > 50
    assert history["tasks_accepted"] > 20
    assert history["failed_after_lost_attempts"] == [], history["failed_after_lost_attempts"]
