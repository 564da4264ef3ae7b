"""Request dependencies: the app's shared state, a database session per request, and authorisation."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from magflow.api.auth import Principal, authenticate
from magflow.api.errors import ApiError
from magflow.api.settings import ApiSettings
from magflow.config import Settings

if TYPE_CHECKING:
    from magflow.api.background import SyncDispatcher

_bearer = HTTPBearer(auto_error=False, description="A token from `magflow token create --scope read|sync|admin`")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass
class AppState:
    settings: Settings
    api_settings: ApiSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    dispatcher: SyncDispatcher
    owns_engine: bool = False
    extras: dict[str, object] = field(default_factory=dict)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.magflow
    return state


State = Annotated[AppState, Depends(get_state)]


async def get_session(state: State) -> AsyncIterator[AsyncSession]:
    """One session per request; routers commit what they change, anything uncommitted is rolled back."""
    async with state.sessions() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _declared_query(route: APIRoute) -> frozenset[str]:
    return frozenset(_query_names(route.dependant))


async def reject_unknown_query(request: Request) -> None:
    """A misspelt (`?serach=laptop`) or repeated parameter is a 422 naming it, not a silently wrong answer."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    repeated = sorted({k for k, _ in request.query_params.multi_items() if len(request.query_params.getlist(k)) > 1})
    if repeated:
        raise ApiError(
            422,
            "invalid_request",
            f"{repeated[0]}: given more than once; send each query parameter once.",
            extra={"fields": [{"field": name, "message": "given more than once"} for name in repeated]},
        )
    unknown = sorted(set(request.query_params) - _declared_query(route))
    if unknown:
        allowed = ", ".join(sorted(_declared_query(route))) or "none"
        raise ApiError(
            422,
            "invalid_request",
            f"{unknown[0]}: unknown query parameter; this call accepts: {allowed}.",
            extra={"fields": [{"field": name, "message": "unknown query parameter"} for name in unknown]},
        )


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a caller whose token's scope is `scope` or wider (read < sync < admin)."""

    async def dependency(
        request: Request,
        state: State,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> Principal:
        header = request.headers.get("authorization")
        if header is None:
            if (
                scope == "read"
                and request.method == "GET"
                and state.api_settings.allow_local_reads
                and _is_loopback(request)
            ):
                return Principal(name="local", scope="read")
            raise ApiError(
                401,
                "missing_token",
                "This call needs a token: send Authorization: Bearer <token> (create one with "
                "`magflow token create --name NAME --scope read|sync|admin`).",
                headers=_CHALLENGE,
            )
        if credentials is None:
            raise ApiError(
                401,
                "invalid_token",
                "The Authorization header must be 'Bearer <token>'; send the token the CLI printed.",
                headers=_CHALLENGE,
            )
        async with state.sessions() as session:
            principal = await authenticate(session, credentials.credentials)
            await session.commit()
        if principal is None:
            raise ApiError(
                401,
                "invalid_token",
                "This token is unknown or revoked; create a new one with `magflow token create`.",
                headers=_CHALLENGE,
            )
        if not principal.allows(scope):
            raise ApiError(
                403,
                "insufficient_scope",
                f"Token {principal.name!r} has scope {principal.scope!r} but this call needs {scope!r}; "
                f"use a token created with --scope {scope} or wider.",
            )
        return principal

    return dependency


Reader = Annotated[Principal, Depends(require("read"))]
Syncer = Annotated[Principal, Depends(require("sync"))]
Admin = Annotated[Principal, Depends(require("admin"))]
