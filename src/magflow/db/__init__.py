"""Database access: engines, sessions, the embedded default and migrations."""

from magflow.db.engine import (
    create_engine,
    dispose_engine,
    get_db,
    get_engine,
    resolve_database_url,
    session_factory,
)

__all__ = [
    "create_engine",
    "dispose_engine",
    "get_db",
    "get_engine",
    "resolve_database_url",
    "session_factory",
]
