"""A command's Prometheus endpoint: the sum over the processes it starts (see collectors)."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from orchestrator.cli.startup import StartupError

if TYPE_CHECKING:
    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
FOLDER_PREFIX = "orchestrator-metrics-"


def serve_metrics(settings: Settings, *, from_database: bool) -> None:
    """Before any API or job worker process starts: give them a fresh folder for their values,
    and serve the sum at METRICS_HOST:METRICS_PORT/metrics from a thread of this process."""
    if settings.metrics_port == 0:
        return
    if "prometheus_client" in sys.modules:  # its processes would each keep their values to themselves
        raise RuntimeError("prometheus_client was imported before its multiprocess folder was set")
    os.environ[MULTIPROCESS_DIR] = str(_fresh_folder())
    from prometheus_client import CollectorRegistry, start_http_server

    from orchestrator.cli.collectors import Backlog, Processes

    registry = CollectorRegistry()
    registry.register(Processes(os.environ[MULTIPROCESS_DIR]))
    if from_database:
        registry.register(Backlog(settings))
    try:
        start_http_server(settings.metrics_port, settings.metrics_host, registry=registry)
    except OSError as exc:
        raise StartupError(
            f"METRICS_PORT: cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}"
            f" ({exc.strerror}); give each command on this host its own port, or 0 to turn metrics off"
        ) from None
    logger.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)


def _fresh_folder() -> Path:
    """This command's folder, removed when it exits; those of commands that were killed go now."""
    base = Path(tempfile.gettempdir())
    for old in base.glob(f"{FOLDER_PREFIX}*"):
        pid = old.name.removeprefix(FOLDER_PREFIX)
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    folder = base / f"{FOLDER_PREFIX}{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
