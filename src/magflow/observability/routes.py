"""`GET /health/ready` and `GET /metrics`, without a token (monitoring systems call them).

The app must keep its engine and settings on `app.state.magflow` (`.engine`, `.settings`), as the
REST API's app factory does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.config import Settings
from magflow.observability.exposition import CONTENT_TYPE, render_metrics
from magflow.observability.health import readiness

router = APIRouter(tags=["monitoring"])


def _context(request: Request) -> tuple[AsyncEngine, Settings]:
    state = request.app.state.magflow
    return state.engine, state.settings


@router.get(
    "/health/ready",
    summary="Readiness: database, broker, each account's last connection check and last successful sync",
    responses={503: {"description": "unhealthy: the database is down or eMAG refused an account"}},
)
async def health_ready(request: Request) -> JSONResponse:
    engine, settings = _context(request)
    report: dict[str, Any] = await readiness(engine, settings)
    return JSONResponse(report, status_code=503 if report["status"] == "unhealthy" else 200)


@router.get(
    "/metrics",
    summary="Prometheus metrics of every magflow process (text exposition format)",
    response_class=Response,
)
async def metrics(request: Request) -> Response:
    engine, settings = _context(request)
    return Response(await render_metrics(engine, settings), media_type=CONTENT_TYPE)
