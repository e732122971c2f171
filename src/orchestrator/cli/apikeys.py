"""`orchestrator apikey create | list | revoke`, and the dev key that `up` hands out."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING, TypeVar

import click
from sqlalchemy.engine import make_url

from orchestrator.auth.keys import create_key, find_caller, list_keys, revoke_key
from orchestrator.auth.models import Scope
from orchestrator.cli.startup import check_database, load_settings
from orchestrator.db import in_transaction
from orchestrator.errors import DomainError, NotFound
from orchestrator.schema import migrate_to_head

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from sqlalchemy.ext.asyncio import AsyncSession

    from orchestrator.settings import Settings

T = TypeVar("T")
DEV_KEY_NAME = "orchestrator-up-dev"
DEV_KEY_FILE = "dev-api-key"


@click.group()
def apikey() -> None:
    """API keys: a key is shown once, when created; only its hash is stored."""


@apikey.command("create")
@click.option("--name", required=True, help="Who or what uses the key; unique among live keys")
@click.option(
    "--scope", type=click.Choice([s.value for s in Scope]), required=True, help="read < write < admin"
)
@click.option(
    "--rate-limit", default=None, help="This key's own limit, e.g. 1000/minute (default: API_RATE_LIMIT)"
)
def create(name: str, scope: str, rate_limit: str | None) -> None:
    """Create a key; only the key goes to stdout: KEY=$(orchestrator apikey create ...)."""
    row, key = _in_database(lambda session: create_key(session, name, Scope(scope), rate_limit))
    click.echo(f"API key {row.name!r}: scope {row.scope}, id {row.id}. It is shown only now:", err=True)
    click.echo(key)


@apikey.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Revoked keys too")
def list_(include_revoked: bool) -> None:
    """The keys, without their secrets."""
    rows = _in_database(lambda session: list_keys(session, include_revoked=include_revoked))
    click.echo(f"{'id':36}  {'name':20}  {'scope':5}  {'prefix':12}  {'last used':19}  revoked")
    for row in rows:
        last_used = f"{row.last_used_at:%Y-%m-%d %H:%M:%S}" if row.last_used_at else "never"
        revoked = f"{row.revoked_at:%Y-%m-%d %H:%M:%S}" if row.revoked_at else ""
        click.echo(f"{row.id!s:36}  {row.name:20}  {row.scope:5}  {row.prefix:12}  {last_used:19}  {revoked}")


@apikey.command("revoke")
@click.argument("name_or_id")
def revoke(name_or_id: str) -> None:
    """Revoke a live key; API workers stop accepting it within API_KEY_CACHE_S."""
    row = _in_database(lambda session: revoke_key(session, name_or_id))
    click.echo(f"revoked API key {row.name!r} ({row.id})")


def _in_database(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` against DATABASE_URL, or the embedded database `up` made under DATA_DIR."""
    from orchestrator.embedded import embedded_database

    settings = load_settings()
    if settings.database_url is not None:
        check_database(settings, migrated=True)
    with contextlib.ExitStack() as stack:
        try:
            # Never a key in a new local database that no service reads.
            database = stack.enter_context(embedded_database(settings, create=False))
        except FileNotFoundError as exc:
            raise click.UsageError(
                f"DATABASE_URL is not set and {exc} (`orchestrator up` makes one)"
            ) from None
        where = make_url(str(database.database_url))
        click.echo(f"database {where.database} on {where.host or 'a local socket'}", err=True)
        if settings.database_url is None:
            migrate_to_head(database)
        try:
            return asyncio.run(in_transaction(database, work))
        except DomainError as exc:
            raise click.ClickException(exc.detail) from None


def dev_key(settings: Settings) -> tuple[str, bool]:
    """An admin key for the developer of an embedded setup, kept in `data_dir` and reused while
    live: (the key, whether it was made now)."""
    path = settings.data_dir / DEV_KEY_FILE

    async def ensure(session: AsyncSession) -> tuple[str, bool]:
        kept = path.read_text().strip() if path.exists() else None
        if kept and await find_caller(session, kept) is not None:
            return kept, False
        with contextlib.suppress(NotFound):
            await revoke_key(session, DEV_KEY_NAME)
        return (await create_key(session, DEV_KEY_NAME, Scope.ADMIN))[1], True

    key, made = asyncio.run(in_transaction(settings, ensure))
    _write_private(path, key)
    return key, made


def _write_private(path: Path, text: str) -> None:
    """Readable by its owner only, whatever the file was before; never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as file:
        os.fchmod(fd, 0o600)
        file.write(text + "\n")
