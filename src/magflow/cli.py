"""The `magflow` command."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer

from magflow.config import SettingsError, get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="A local PostgreSQL copy of eMAG catalogues.")
db_app = typer.Typer(no_args_is_help=True, help="The database: migrations, the embedded server, its URL.")
app.add_typer(db_app, name="db")

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the migrations (the embedded server is started when DATABASE_URL is unset)."""
    from magflow.db.engine import resolve_database_url
    from magflow.db.migrate import upgrade

    run(upgrade(resolve_database_url(), revision))
    typer.echo(f"database at revision {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="target revision, e.g. base")) -> None:
    """Revert migrations down to REVISION."""
    from magflow.db.engine import resolve_database_url
    from magflow.db.migrate import downgrade

    run(downgrade(resolve_database_url(), revision))
    typer.echo(f"database at revision {revision}")


@db_app.command("url")
def db_url() -> None:
    """Print the database URL for other tools. The embedded server's URL holds no secret (its password is
    in a 0600 passfile the URL names); a DATABASE_URL is printed as set, password included: for psql, use
    `magflow db psql`, which keeps the password out of the process list."""
    from magflow.db.engine import resolve_database_url

    typer.echo(resolve_database_url())


@db_app.command("psql", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def db_psql(ctx: typer.Context) -> None:
    """Open psql on magflow's database; extra arguments go to psql (`magflow db psql -c "SELECT ..."`)."""
    import os
    import shutil

    from magflow.db.embedded import embedded_psql
    from magflow.db.engine import resolve_database_url
    from magflow.db.url import split_password

    # Arguments are visible to every local user (`ps`); the environment only to the same user and root.
    url, password = split_password(resolve_database_url())
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = password
    binary = shutil.which("psql") or embedded_psql()
    os.execve(binary, [binary, url, *ctx.args], env)


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL server."""
    from magflow.db.embedded import stop_embedded

    stopped = stop_embedded(get_settings().magflow_data_dir)
    typer.echo("embedded PostgreSQL stopped" if stopped else "the embedded PostgreSQL server is not running")


def main(argv: list[str] | None = None) -> int:
    try:
        settings = get_settings()
        from magflow.observability.logging import configure_logging

        configure_logging(settings, console=False)
        from magflow import commands  # noqa: F401  (registers the sync, status, ... commands)

        # standalone_mode=False: click hands back typer.Exit's code instead of raising it
        code = app(args=argv, prog_name="magflow", standalone_mode=False)
        if isinstance(code, int):
            return code
    except SettingsError as exc:
        print(f"magflow: {exc}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        print("magflow: aborted", file=sys.stderr)
        return 1
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        problem = _database_problem(exc)
        if problem is None:
            raise
        print(f"magflow: {problem}", file=sys.stderr)
        return 3
    return 0


def _database_problem(exc: BaseException) -> str | None:
    """One line for a database magflow cannot reach, instead of a driver traceback."""
    from sqlalchemy.exc import DBAPIError

    from magflow.db.embedded import EmbeddedDatabaseError

    if isinstance(exc, EmbeddedDatabaseError):
        return str(exc)
    if not isinstance(exc, ConnectionError | socket.gaierror | TimeoutError | DBAPIError):
        return None
    settings = get_settings()
    reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
    if "relation" in reason and "does not exist" in reason:
        return f"the database has no magflow schema yet ({reason}): run `magflow db upgrade`"
    if settings.database_url:
        from magflow.db.url import redact

        return (
            f"cannot use the database {redact(settings.database_url)} ({reason}): check DATABASE_URL and that "
            "PostgreSQL runs there, or unset DATABASE_URL to use the embedded server"
        )
    return f"cannot use the embedded database ({reason}): see {settings.magflow_data_dir}/pgdata/log"
