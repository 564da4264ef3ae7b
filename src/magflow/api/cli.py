"""`magflow token create|list|revoke` and `magflow serve`; the `magflow` app registers them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from magflow.api.auth import SCOPES, TokenError, create_token, list_tokens, revoke_token

T = TypeVar("T")

token_app = typer.Typer(no_args_is_help=True, help="API tokens for the REST API: create (shown once), list, revoke.")


async def _with_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from magflow.db.engine import dispose_engine, get_db, resolve_database_url
    from magflow.db.migrate import upgrade

    await upgrade(await asyncio.to_thread(resolve_database_url))
    try:
        async with get_db() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await dispose_engine()


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="who or what uses it, e.g. ops, grafana, ci")],
    scope: Annotated[str, typer.Option("--scope", help="read | sync (read + sync, cancel) | admin")] = "read",
) -> None:
    """Create a token and print it once; only its SHA-256 hash is stored."""
    try:
        plaintext = asyncio.run(_with_session(lambda s: create_token(s, name, scope)))
    except TokenError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(plaintext)
    typer.echo(
        f"token {name!r} (scope {scope}) created; it is shown only now: store it, then send it as "
        "'Authorization: Bearer <token>'",
        err=True,
    )


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="the token's name")]) -> None:
    """Revoke a token: it stops working at once."""
    if not asyncio.run(_with_session(lambda s: revoke_token(s, name))):
        typer.echo(f"error: no live token is named {name!r}; see `magflow token list`", err=True)
        raise typer.Exit(1)
    typer.echo(f"token {name!r} revoked")


@token_app.command("list")
def token_list() -> None:
    """List tokens (name, scope, the first characters, when created, last used, revoked); never the secret."""
    rows = asyncio.run(_with_session(list_tokens))
    if not rows:
        typer.echo("no tokens; create one with `magflow token create --name NAME --scope read|sync|admin`")
        return
    typer.echo(f"{'name':<24} {'scope':<6} {'prefix':<13} {'created':<20} {'last used':<20} revoked")
    for row in rows:
        created = f"{row['created_at']:%Y-%m-%d %H:%M:%S}"
        used = f"{row['last_used_at']:%Y-%m-%d %H:%M:%S}" if row["last_used_at"] else "never"
        revoked = f"{row['revoked_at']:%Y-%m-%d %H:%M:%S}" if row["revoked_at"] else "-"
        typer.echo(f"{row['name']:<24} {row['scope']:<6} {row['prefix']:<13} {created:<20} {used:<20} {revoked}")


def serve(
    host: Annotated[str, typer.Option(help="address to listen on (0.0.0.0 for every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve the REST API (OpenAPI docs at /docs), after applying the database migrations."""
    import uvicorn

    from magflow.db.engine import resolve_database_url
    from magflow.db.migrate import upgrade

    asyncio.run(upgrade(resolve_database_url()))
    uvicorn.run(
        "magflow.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=True,
    )


__all__ = ["SCOPES", "serve", "token_app"]
