"""`orchestrator up | api | worker | migrate`: the service's processes."""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING, NoReturn

import click

from orchestrator.cli.apikeys import DEV_KEY_FILE, dev_key
from orchestrator.cli.exporter import API_PORT, WORKER_PORT, serve_metrics
from orchestrator.cli.startup import check_database, check_port, check_redis, load_settings
from orchestrator.schema import migrate_to_head
from orchestrator.settings import Settings, get_settings

if TYPE_CHECKING:
    from types import FrameType

workers_option = click.option(
    "--workers", type=int, default=None, help="API worker processes (default: one per CPU)"
)
host_option = click.option("--host", default=None, help="Address to bind (default: 127.0.0.1)")
port_option = click.option("--port", type=int, default=None, help="Port to bind (default: 8000)")


@click.command()
@workers_option
@host_option
@port_option
def up(workers: int | None, host: str | None, port: int | None) -> None:
    """Start everything: embedded PostgreSQL/Redis when no URL is set, migrations, workers, the API."""
    from orchestrator.embedded import embedded_services
    from orchestrator.runner.processes import WorkerProcesses

    configured = load_settings()
    host, port = host or configured.api_host, port or configured.api_port
    check_port(host, port)
    # A SIGTERM before Granian takes over must still unwind the ExitStack and stop the servers.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    dev_machine = configured.database_url is None
    for external, check in ((configured.database_url, check_database), (configured.redis_url, check_redis)):
        if external is not None:
            check(configured)
    with embedded_services(configured) as settings:
        _export(settings)
        migrate_to_head(settings)
        serve_metrics(settings, API_PORT, from_database=True)
        _announce_keys(settings, dev_machine, _base_url(host, port))
        job_workers = WorkerProcesses(settings.worker_processes, settings.worker_concurrency)
        job_workers.start()
        try:
            serve_api(settings, workers=workers, host=host, port=port)
        finally:
            job_workers.stop(settings.shutdown_grace_s + 5)


@click.command()
@click.option("--processes", type=int, default=None, help="Worker processes (default: one per CPU)")
@click.option("--concurrency", type=int, default=None, help="Jobs at once per process (default: 20)")
def worker(processes: int | None, concurrency: int | None) -> None:
    """Run the job workers (SAQ) against DATABASE_URL and REDIS_URL until SIGTERM."""
    from orchestrator.runner.processes import WorkerProcesses, run_until_signalled

    settings = _require_urls(load_settings())
    check_database(settings, migrated=True)
    check_redis(settings)
    serve_metrics(settings, WORKER_PORT, from_database=True)
    job_workers = WorkerProcesses(
        processes or settings.worker_processes, concurrency or settings.worker_concurrency
    )
    run_until_signalled(job_workers, settings.shutdown_grace_s + 5)


@click.command()
@workers_option
@host_option
@port_option
def api(workers: int | None, host: str | None, port: int | None) -> None:
    """Serve the API with Granian against DATABASE_URL and REDIS_URL."""
    settings = _require_urls(load_settings())
    host, port = host or settings.api_host, port or settings.api_port
    check_port(host, port)
    serve_metrics(settings, API_PORT, from_database=False)
    serve_api(settings, workers=workers, host=host, port=port)


@click.command()
@click.option("--revision", default="head", show_default=True, help="Alembic revision to upgrade to")
def migrate(revision: str) -> None:
    """Apply the Alembic migrations to DATABASE_URL."""
    settings = _require_urls(load_settings(), "database_url")
    check_database(settings)
    migrate_to_head(settings, revision=revision)


def serve_api(settings: Settings, *, workers: int | None, host: str, port: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    server = Granian(
        "orchestrator.app:create_app",
        factory=True,
        interface=Interfaces.ASGI,
        address=host,
        port=port,
        workers=workers or settings.api_workers,
        loop=Loops.uvloop,
        respawn_failed_workers=True,
        # A worker still importing when SIGTERM lands misses it; do not wait for it forever.
        workers_kill_timeout=10,
        log_access=False,
        # Granian's own lines (workers started, stopped) through the root handler: one format.
        log_dictconfig={
            "version": 1,
            "disable_existing_loggers": False,
            "loggers": {"_granian": {"propagate": True}},
        },
    )
    click.echo(f"orchestrator API on {_base_url(host, port)}")
    server.serve()


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _require_urls(settings: Settings, *names: str) -> Settings:
    missing = [name for name in names or ("database_url", "redis_url") if getattr(settings, name) is None]
    if missing:
        names_set = " and ".join(name.upper() for name in missing)
        raise click.UsageError(f"{names_set} not set; `orchestrator up` starts embedded servers instead")
    return settings


def _export(settings: Settings) -> None:
    """Hand the URLs to the child processes, which read their own Settings."""
    os.environ["DATABASE_URL"] = str(settings.database_url)
    os.environ["REDIS_URL"] = str(settings.redis_url)
    get_settings.cache_clear()


def _announce_keys(settings: Settings, dev_machine: bool, base: str) -> None:
    """Auth is always on; on an embedded (dev) setup `up` hands its developer an admin key."""
    if not dev_machine:
        click.echo("API keys: orchestrator apikey create --name NAME --scope read|write|admin")
        return
    key, made = dev_key(settings)
    kept = settings.data_dir / DEV_KEY_FILE
    # Shown once, when made: later starts name the file, so the key is not in every log.
    click.echo(f"API key (admin, kept in {kept}): {key}" if made else f"API key (admin): in {kept}")
    click.echo(f"SAQ UI: {base}/saq  (any user name, the API key as password)")


def _exit_on_signal(signum: int, _frame: FrameType | None) -> NoReturn:
    sys.exit(128 + signum)
