"""Running the Alembic migrations from code (the CLI, the tests, the quick start)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = url
    return config


def _run(func_name: str, url: str, revision: str) -> None:
    config = alembic_config(url)
    getattr(command, func_name)(config, revision)


async def upgrade(url: str, revision: str = "head") -> None:
    # Alembic's env.py runs its own event loop; keep it off ours.
    await asyncio.to_thread(_run, "upgrade", url, revision)


async def downgrade(url: str, revision: str = "base") -> None:
    await asyncio.to_thread(_run, "downgrade", url, revision)
