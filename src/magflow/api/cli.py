"""`magflow token create|list|revoke` and `magflow serve`; the `magflow` app registers them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from magflow.api.auth import SCOPES, TokenError, create_token, list_tokens, parse_duration, revoke_token
from magflow.api.settings import DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_LIMIT_CONCURRENCY

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
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="e.g. 90d, 12h, 30m, 2w; without it the token never expires")
    ] = None,
) -> None:
    """Create a token and print it once; only its SHA-256 hash is stored."""
    try:
        lifetime = parse_duration(expires_in) if expires_in is not None else None
        plaintext = asyncio.run(_with_session(lambda s: create_token(s, name, scope, lifetime)))
    except TokenError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(plaintext)
    until = f", expires in {expires_in}" if expires_in else ""
    typer.echo(
        f"token {name!r} (scope {scope}{until}) created; it is shown only now: store it in a file only you can "
        "read, then send it as 'Authorization: Bearer <token>'",
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
    """List tokens (name, scope, first characters, created, last used, revoked, expires); never the secret."""
    rows = asyncio.run(_with_session(list_tokens))
    if not rows:
        typer.echo("no tokens; create one with `magflow token create --name NAME --scope read|sync|admin`")
        return
    typer.echo(f"{'name':<24} {'scope':<6} {'prefix':<13} {'created':<20} {'last used':<20} {'revoked':<20} expires")
    for row in rows:
        created = _when(row["created_at"])
        used = _when(row["last_used_at"], "never")
        revoked = _when(row["revoked_at"])
        expires = _when(row["expires_at"], "never")
        typer.echo(
            f"{row['name']:<24} {row['scope']:<6} {row['prefix']:<13} {created:<20} {used:<20} {revoked:<20} {expires}"
        )


def _when(moment: datetime | None, missing: str = "-") -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment is not None else missing


def serve(
    host: Annotated[str, typer.Option(help="address to listen on (0.0.0.0 for every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    limit_concurrency: Annotated[
        int, typer.Option(min=1, help="connections and requests served at once; more get 503")
    ] = DEFAULT_LIMIT_CONCURRENCY,
    header_timeout: Annotated[
        float, typer.Option(min=0.1, help="seconds a client has to send a request's line and headers")
    ] = DEFAULT_HEADER_TIMEOUT,
    keep_alive_timeout: Annotated[
        int, typer.Option(min=1, help="seconds an idle keep-alive connection stays open")
    ] = DEFAULT_KEEP_ALIVE_TIMEOUT,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="proxies trusted to set X-Forwarded-For/-Proto, comma-separated "
            "(default: FORWARDED_ALLOW_IPS, else 127.0.0.1)"
        ),
    ] = None,
) -> None:
    """Serve the REST API (OpenAPI docs at /docs), after applying the database migrations."""
    import uvicorn

    from magflow.api.server import ServerLimits, server_options
    from magflow.api.settings import ApiSettings, check_proxy_trust, forwarded_allow_ips_from_env
    from magflow.config import get_settings
    from magflow.db.engine import resolve_database_url
    from magflow.db.migrate import upgrade

    trusted = forwarded_allow_ips or forwarded_allow_ips_from_env()
    check_proxy_trust(ApiSettings.from_settings(get_settings()), trusted)  # before anything starts
    asyncio.run(upgrade(resolve_database_url()))
    limits = ServerLimits(
        limit_concurrency=limit_concurrency, header_timeout=header_timeout, keep_alive_timeout=keep_alive_timeout
    )
    uvicorn.run(
        "magflow.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        **server_options(limits, trusted),
    )


__all__ = ["SCOPES", "serve", "token_app"]
