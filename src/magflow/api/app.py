"""The FastAPI app factory: `uvicorn --factory magflow.api.app:create_app`, or `magflow serve`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow import __version__
from magflow.api import errors
from magflow.api.background import SyncDispatcher
from magflow.api.deps import AppState
from magflow.api.routers import health, products, sync
from magflow.api.settings import ApiSettings
from magflow.config import Settings, get_settings
from magflow.db.engine import create_engine, resolve_database_url, session_factory
from magflow.observability.logging import configure_logging
from magflow.observability.routes import router as monitoring_router

DESCRIPTION = """A local PostgreSQL copy of the eMAG catalogues of the MAIN and FBE seller accounts.

Every endpoint except `/health` needs `Authorization: Bearer <token>`; create tokens with
`magflow token create --name NAME --scope read|sync|admin`. Errors are always
`{"error": "<code>", "detail": "<what to do>"}`.
"""


def create_app(settings: Settings | None = None, engine: AsyncEngine | None = None) -> FastAPI:
    """The API app. Without `engine`, the app opens its own from the settings at startup and closes it."""
    settings = settings or get_settings()
    api_settings = ApiSettings.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings)
        owns_engine = engine is None
        if engine is None:
            # resolve_database_url may start the embedded server: a blocking subprocess.
            url = await asyncio.to_thread(resolve_database_url, settings)
            active = create_engine(url, pool_size=10)
        else:
            active = engine
        state = AppState(
            settings=settings,
            api_settings=api_settings,
            engine=active,
            sessions=session_factory(active),
            dispatcher=SyncDispatcher(settings, active),
            owns_engine=owns_engine,
        )
        app.state.magflow = state
        try:
            yield
        finally:
            await state.dispatcher.shutdown()
            if owns_engine:
                await active.dispose()

    app = FastAPI(
        title="magflow",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(health.router)
    app.include_router(sync.router)
    app.include_router(products.router)
    app.include_router(monitoring_router)
    return app
