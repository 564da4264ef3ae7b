"""The FastAPI app factory: `uvicorn --factory magflow.api.app:create_app`, or `magflow serve`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow import __version__
from magflow.api import errors
from magflow.api.background import SyncDispatcher
from magflow.api.deps import AppState, required_scope
from magflow.api.docs import docs_router
from magflow.api.guard import RequestGuard
from magflow.api.routers import products, sync
from magflow.api.schemas import ErrorBody
from magflow.api.settings import ApiSettings, check_proxy_trust, forwarded_allow_ips_from_env
from magflow.config import Settings, get_settings
from magflow.db.engine import create_engine, resolve_database_url, session_factory
from magflow.observability.logging import configure_logging
from magflow.observability.routes import router as monitoring_router

OPENAPI_URL = "/openapi.json"
DESCRIPTION = """A local PostgreSQL copy of the eMAG catalogues of the MAIN and FBE seller accounts.

Every call needs `Authorization: Bearer <token>` except `GET /health` (liveness), `GET /health/ready` (its
status only; the full report needs a token) and these docs. Create tokens with
`magflow token create --name NAME --scope read|sync|admin`; each operation below names the scope it needs
(`x-magflow-scope`), and a wider scope also works (read < sync < admin). Errors are always
`{"error": "<code>", "detail": "<what to do>"}`.
"""
SCOPE_NOTES = {
    "read": "Needs a token with scope `read` (or `sync`, `admin`).",
    "sync": "Needs a token with scope `sync` (or `admin`).",
    "admin": "Needs a token with scope `admin`.",
}
GUARD_ERRORS: dict[str, dict[str, Any]] = {
    "413": {"description": "The body is over MAGFLOW_API_MAX_BODY_BYTES"},
    "429": {"description": "Too many unknown tokens from this address; wait Retry-After seconds"},
}


def create_app(settings: Settings | None = None, engine: AsyncEngine | None = None) -> FastAPI:
    """The API app. Without `engine`, the app opens its own from the settings at startup and closes it."""
    settings = settings or get_settings()
    api_settings = ApiSettings.from_settings(settings)
    check_proxy_trust(api_settings, forwarded_allow_ips_from_env())

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
        openapi_url=OPENAPI_URL if api_settings.docs else None,
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    app.add_middleware(RequestGuard)
    routers = [monitoring_router, sync.router, products.router]
    for router in routers:
        app.include_router(router)
    if api_settings.docs:
        app.include_router(docs_router(app, OPENAPI_URL))
    _document_scopes(app, [route for router in routers for route in router.routes if isinstance(route, APIRoute)])
    return app


def _document_scopes(app: FastAPI, routes: list[APIRoute]) -> None:
    """Each operation of the OpenAPI document names the scope it needs: in `x-magflow-scope`, in its
    description, and as the role of its bearer requirement (OpenAPI 3.1 lets a non-OAuth scheme list roles)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for route in routes:
            scope = required_scope(route) if route.include_in_schema else None
            if scope is None:
                continue
            for method in route.methods or ():
                operation = schema["paths"][route.path_format].get(method.lower())
                if operation is None:
                    continue
                operation["x-magflow-scope"] = scope
                operation["security"] = [{"HTTPBearer": [scope]}]
                note = SCOPE_NOTES[scope]
                operation["description"] = (
                    f"{note}\n\n{operation['description']}" if operation.get("description") else note
                )
                responses = operation.setdefault("responses", {})
                for status, response in GUARD_ERRORS.items():
                    responses.setdefault(status, {**response, "content": _error_content()})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ErrorBody.__name__}"}}}
