"""The database schema: Alembic's migrations (the `migrations/` folder) applied to a database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def migrate_to_head(settings: Settings, revision: str = "head") -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = settings.database_url
    command.upgrade(config, revision)
