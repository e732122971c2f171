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


# Each command its own port unless METRICS_PORT says otherwise: an API and a worker on one host
# (two systemd units, say) both serve their metrics out of the box.
API_PORT, WORKER_PORT = 9464, 9465


def serve_metrics(settings: Settings, default_port: int, *, from_database: bool) -> None:
    """Before any API or job worker process starts: give them a fresh folder for their values,
    and serve the sum at METRICS_HOST:METRICS_PORT/metrics from a thread of this process."""
    port = default_port if settings.metrics_port is None else settings.metrics_port
    if port == 0:
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
        start_http_server(port, settings.metrics_host, registry=registry)
    except OSError as exc:
        raise StartupError(
            f"METRICS_PORT: cannot serve metrics on {settings.metrics_host}:{port}"
            f" ({exc.strerror}); give each command on this host its own port, or 0 to turn metrics off"
        ) from None
    logger.info("metrics on http://%s:%d/metrics", settings.metrics_host, port)


def _fresh_folder() -> Path:
    """This command's folder (a name nobody can guess, ours alone), removed when it exits; those
    of commands that were killed go now."""
    base = Path(tempfile.gettempdir())
    for old in base.glob(f"{FOLDER_PREFIX}*-*"):
        pid = old.name.removeprefix(FOLDER_PREFIX).partition("-")[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)) and old.lstat().st_uid == os.getuid():
            shutil.rmtree(old, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
