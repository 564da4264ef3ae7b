"""GET /health: the process is alive (no token needed; the monitoring issue adds the deeper checks)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from magflow import __version__
from magflow.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Liveness: the API server answers")
async def health() -> Any:
    return {"status": "ok", "version": __version__}
