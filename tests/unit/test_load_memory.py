"""The load report's memory figures: the largest process of each kind after the warm-up and at
the end of the run."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from load.memory import growth

if TYPE_CHECKING:
    from pathlib import Path


def test_growth_compares_the_sample_nearest_minute_two_with_the_last(tmp_path: Path) -> None:
    samples = tmp_path / "memory.jsonl"
    rows = [
        {"at_s": 0, "API worker": [50, 60], "job worker": [40]},
        {"at_s": 118, "API worker": [100, 90], "job worker": [80]},
        {"at_s": 300, "API worker": [100, 110], "job worker": []},  # the job worker restarting
        {"at_s": 600, "API worker": [120, 95], "job worker": [80]},
    ]
    samples.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = growth(samples, duration_s=600)
    assert report["API worker"] == {
        "warm_at_s": 118,
        "warm_mib": 100,
        "end_at_s": 600,
        "end_mib": 120,
        "growth_pct": 20.0,
    }
    assert report["job worker"]["growth_pct"] == 0.0


def test_a_short_run_warms_up_for_a_fifth_of_it(tmp_path: Path) -> None:
    samples = tmp_path / "memory.jsonl"
    rows = [{"at_s": at, "API worker": [100 + at]} for at in (0, 10, 20, 30, 40, 50)]
    samples.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert growth(samples, duration_s=50)["API worker"]["warm_at_s"] == 10
    assert growth(tmp_path / "none.jsonl", duration_s=50) == {}
