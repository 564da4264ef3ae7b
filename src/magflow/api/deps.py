"""Request dependencies: the app's shared state, a database session per request, and authorisation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from magflow.api.access import authorize, principal_of
from magflow.api.auth import SCOPE_RANK, Principal, Scope
from magflow.api.errors import ApiError
from magflow.api.settings import ApiSettings
from magflow.config import Settings

if TYPE_CHECKING:
    from magflow.api.background import SyncDispatcher

_bearer = HTTPBearer(auto_error=False, description="A token from `magflow token create --scope read|sync|admin`")


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


# Each dependency made by `require`, with the scope it needs: the request guard and the OpenAPI document read it.
_REQUIRED: dict[Callable[..., Any], Scope] = {}


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a caller whose token's scope is `scope` or wider (read < sync < admin).

    The request guard has already authorised the request before reading its body and left the principal in the
    scope; this hands it to the route (and authorises by itself when the app runs without the guard).
    """

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> Principal:
        return principal_of(request.scope) or await authorize(request, scope)

    _REQUIRED[dependency] = scope
    return dependency


def required_scope(route: APIRoute) -> str | None:
    """The widest scope the route's dependencies require, or None for a route open without a token."""
    found: list[str] = []

    def walk(dependant: Dependant) -> None:
        try:
            scope = _REQUIRED.get(dependant.call) if dependant.call is not None else None
        except TypeError:  # an unhashable callable (a dependency object): never one of ours
            scope = None
        if scope is not None:
            found.append(scope)
        for sub in dependant.dependencies:
            walk(sub)

    walk(route.dependant)
    return max(found, key=SCOPE_RANK.__getitem__, default=None)


Reader = Annotated[Principal, Depends(require("read"))]
Syncer = Annotated[Principal, Depends(require("sync"))]
Admin = Annotated[Principal, Depends(require("admin"))]
