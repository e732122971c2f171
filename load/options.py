"""The locustfile's own command-line options, and the per-process state read from them at init."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from load import API_KEY_ENV, OLD_PROFILE_THINK_TIME
from load.ledger import LedgerWriter

if TYPE_CHECKING:
    import argparse


def add_options(parser: Any) -> None:
    """Add the suite's options to Locust's parser (a configargparse one: hence `env_var`)."""
    parser.add_argument("--ledger", default="", help="Append acknowledged writes here (JSON lines)")
    parser.add_argument("--summary-json", default="", help="Write the run's figures here at exit")
    parser.add_argument(
        "--think-time", default=OLD_PROFILE_THINK_TIME, help="MIN:MAX seconds between actions"
    )
    parser.add_argument("--task-timeout", type=float, default=90.0, help="Seconds a task may take")
    parser.add_argument("--retry-window", type=float, default=90.0, help="Seconds to retry connection errors")
    parser.add_argument(
        "--api-key", env_var=API_KEY_ENV, default="", help=f"A write key (better: set {API_KEY_ENV})"
    )


class Run:
    """Per-process state set once at init: options and the ledger."""

    ledger: LedgerWriter | None = None
    think: tuple[float, float] = (0.0, 0.0)
    task_timeout_s = 90.0
    retry_window_s = 90.0

    @classmethod
    def configure(cls, options: argparse.Namespace) -> None:
        low, _, high = options.think_time.partition(":")
        cls.think = (float(low), float(high or low))
        cls.task_timeout_s, cls.retry_window_s = options.task_timeout, options.retry_window
        if options.ledger:
            cls.ledger = LedgerWriter(Path(options.ledger))
