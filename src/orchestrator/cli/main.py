"""The `orchestrator` group: logging set up once, then one of its commands."""

from __future__ import annotations

import click

from orchestrator.cli.apikeys import apikey
from orchestrator.cli.service import api, migrate, up, worker
from orchestrator.cli.startup import load_settings
from orchestrator.logs import configure_logging


@click.group()
def main() -> None:
    """orchestrator: leads and durable jobs over HTTP."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)


for command in (up, api, worker, migrate, apikey):
    main.add_command(command)
