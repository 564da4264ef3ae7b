"""pytest fixtures: a real PostgreSQL database built from the migrations, and a Redis namespace per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import pytest_asyncio
import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from magflow.db.engine import create_engine, session_factory
from magflow.db.migrate import upgrade
from magflow.models import Base

ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _unavailable(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable ({exc}); start it (see .ci/run)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest_asyncio.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """A fresh database for this test session, built by `alembic upgrade head`."""
    name = f"magflow_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        await _admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        _unavailable(f"PostgreSQL at {ADMIN_URL}", exc)
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    await upgrade(url)
    yield url
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=10)
    yield eng
    await eng.dispose()


async def truncate_all(engine: AsyncEngine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest_asyncio.fixture
async def clean_engine(engine: AsyncEngine) -> AsyncEngine:
    """The session's engine over empty tables."""
    await truncate_all(engine)
    return engine


@pytest_asyncio.fixture
async def db(clean_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with session_factory(clean_engine)() as session:
        yield session


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key namespace of this test's own; its keys are deleted afterwards."""
    prefix = f"magflow-test-{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        _unavailable(f"Redis at {REDIS_URL}", exc)
    yield prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL
