"""The interactive docs (/docs: Swagger UI, /redoc: ReDoc) served from files installed with magflow.

FastAPI's default pages load their scripts from a CDN: a browser opening /docs would run whatever that CDN
serves, with the page's origin (and a token pasted into "Authorize"). The scripts here come from the
`fastapi-offline` package instead (Swagger UI 5, which renders the OpenAPI 3.1 FastAPI writes; the
`swagger-ui-bundle` package still ships Swagger UI 4, which cannot), and the pages reference nothing outside
this server.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from magflow.api.errors import ApiError

ASSETS_PATH = "/docs/assets"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
# The files never change for an installed version; the browser may keep them for a day.
ASSET_CACHE = "public, max-age=86400"


def assets_dir() -> Path | None:
    try:
        return Path(str(resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        return None


def _missing_assets() -> ApiError:
    return ApiError(
        503,
        "docs_unavailable",
        "The docs' files are not installed: install magflow with its dependencies (fastapi-offline), "
        "or set MAGFLOW_API_DOCS=false; /openapi.json still works.",
    )


def docs_router(app: FastAPI, openapi_url: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    directory = assets_dir()

    @router.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        if directory is None:
            raise _missing_assets()
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API docs",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": False},
        )

    @router.get("/redoc")
    async def redoc() -> HTMLResponse:
        if directory is None:
            raise _missing_assets()
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API reference",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    @router.get(ASSETS_PATH + "/{name}")
    async def asset(name: str) -> FileResponse:
        media_type = ASSETS.get(name)  # only the listed files: a name is never a path
        if media_type is None:
            raise ApiError(404, "not_found", "No such docs file; open /docs.")
        if directory is None:
            raise _missing_assets()
        return FileResponse(directory / name, media_type=media_type, headers={"Cache-Control": ASSET_CACHE})

    return router
