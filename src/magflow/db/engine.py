"""Engines and sessions. Services never commit; the request or the job commits at its edge."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from magflow.config import Settings, get_settings
from magflow.db.embedded import start_embedded
from magflow.db.url import to_async_url


def resolve_database_url(settings: Settings | None = None) -> str:
    """DATABASE_URL when set, otherwise the embedded server (started on demand)."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.magflow_data_dir)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, default=_json_default).decode()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def create_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    return create_async_engine(
        to_async_url(url),
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_size=pool_size,
        max_overflow=5,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": "magflow", "timezone": "UTC"}},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


_engine: AsyncEngine | None = None


def get_engine() -> AsyncEngine:
    """The process-wide engine, created from the settings on first use."""
    global _engine
    if _engine is None:
        _engine = create_engine(resolve_database_url())
    return _engine


async def dispose_engine() -> None:
    global _engine
    if _engine is not None:
        await _engine.dispose()
        _engine = None


@asynccontextmanager
async def get_db() -> AsyncIterator[AsyncSession]:
    """A session for a unit of work, as the user's guide uses it: `async with get_db() as db:`."""
    async with session_factory(get_engine())() as session:
        yield session
