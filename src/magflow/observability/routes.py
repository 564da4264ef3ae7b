"""`GET /health`, `GET /health/ready` and `GET /metrics`, for load balancers and monitoring systems.

Without a token, /health says only that the process answers and /health/ready only the overall status and
whether the database and the broker answer (with 503 when unhealthy, for load balancers): which accounts are
configured, what eMAG said about them (its messages carry the server's egress IP) and where Redis runs are
for callers with a token. /metrics needs one. A token here is an API token with read scope or wider, or the
MAGFLOW_METRICS_TOKEN secret (made for Prometheus: it opens these routes and nothing else); with
MAGFLOW_API_ALLOW_LOCAL_READS, a direct call from this machine counts as read scope too.

The app must keep its engine and settings on `app.state.magflow` (`.engine`, `.settings`), as the REST API's
app factory does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow import __version__
from magflow.api.access import METRICS_SCOPE, access_context, authorize, identify, is_direct_local
from magflow.api.auth import Principal
from magflow.api.errors import ApiError, error_response
from magflow.config import Settings
from magflow.observability.exposition import CONTENT_TYPE, render_metrics
from magflow.observability.health import readiness

router = APIRouter(tags=["monitoring"])
REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "A token was sent but is unknown, revoked or expired (or, for /metrics, none was sent)"},
    429: {"description": "Too many unknown tokens from this address; wait Retry-After seconds"},
}
TOKEN_NOTE = (
    "A token (an API token with read scope or wider, or MAGFLOW_METRICS_TOKEN) is sent as "
    "`Authorization: Bearer <token>`."
)


class Liveness(BaseModel):
    status: str
    version: str | None = None


def refusal(exc: ApiError) -> JSONResponse:
    """The API's error answer, also where these routes are served without the API's exception handlers."""
    return error_response(exc.status_code, exc.error, exc.detail, dict(exc.headers or {}), exc.extra)


def _context(request: Request) -> tuple[AsyncEngine, Settings]:
    state = request.app.state.magflow
    return state.engine, state.settings


async def _monitoring_caller(request: Request) -> Principal | None:
    """Who may see the details: a token's holder, or a direct local caller when local reads are on."""
    principal = await identify(request, accept_metrics_token=True)
    if principal is not None:
        if principal.scope == METRICS_SCOPE or principal.allows("read"):
            return principal
        return None
    if access_context(request).api.allow_local_reads and is_direct_local(request):
        return Principal(name="local", scope="read")
    return None


@router.get(
    "/health",
    response_model=Liveness,
    response_model_exclude_none=True,
    summary="Liveness: the API server answers (no token needed; with one, also the version)",
    responses=REFUSALS,
)
async def health(request: Request) -> Any:
    try:
        caller = await _monitoring_caller(request)
    except ApiError as exc:
        return refusal(exc)
    return {"status": "ok", "version": __version__ if caller is not None else None}


def _anonymous(report: dict[str, Any]) -> dict[str, Any]:
    checks = report["checks"]
    return {
        "status": report["status"],
        "checked_at": report["checked_at"],
        "checks": {name: {"status": checks[name]["status"]} for name in ("database", "broker")},
        "detail": "Send a token for the full report. " + TOKEN_NOTE,
    }


@router.get(
    "/health/ready",
    summary="Readiness: database, broker, each account's last connection check and last successful sync",
    description="Without a token: the overall status and whether the database and the broker answer. " + TOKEN_NOTE,
    responses={503: {"description": "unhealthy: the database is down or eMAG refused an account"}, **REFUSALS},
)
async def health_ready(request: Request) -> JSONResponse:
    try:
        caller = await _monitoring_caller(request)
    except ApiError as exc:
        return refusal(exc)
    engine, settings = _context(request)
    report: dict[str, Any] = await readiness(engine, settings)
    status_code = 503 if report["status"] == "unhealthy" else 200
    return JSONResponse(report if caller is not None else _anonymous(report), status_code=status_code)


@router.get(
    "/metrics",
    summary="Prometheus metrics of every magflow process (text exposition format)",
    description="Needs a token. " + TOKEN_NOTE,
    response_class=Response,
    responses=REFUSALS,
    openapi_extra={"x-magflow-scope": "read", "security": [{"HTTPBearer": ["read"]}]},
)
async def metrics(request: Request) -> Response:
    try:
        await authorize(request, "read", accept_metrics_token=True)
    except ApiError as exc:
        return refusal(exc)
    engine, settings = _context(request)
    return Response(await render_metrics(engine, settings), media_type=CONTENT_TYPE)
