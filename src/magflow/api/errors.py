"""One error shape for every 4xx/5xx: `{"error": "<short code>", "detail": "<one sentence: what to do>"}`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("magflow.api")

_HTTP_CODES = {
    401: ("unauthorized", "Send a valid token: Authorization: Bearer <token> (see `magflow token create`)."),
    403: ("forbidden", "This token's scope does not allow this call; use a token with a wider scope."),
    404: ("not_found", "No such path; see /docs for the API's endpoints."),
    405: ("method_not_allowed", "This path does not accept that method; see /docs for the allowed ones."),
    406: ("not_acceptable", "This API answers application/json only."),
    413: ("payload_too_large", "The request body is too large; send a smaller one."),
    415: ("unsupported_media_type", "Send the body as JSON."),
}


class ApiError(StarletteHTTPException):
    """An error a caller can meet, with its HTTP status, a short code and one sentence that says what to do.

    An HTTPException, so that one raised while FastAPI reads a request body (the request guard refuses a caller
    there, before the body is read) reaches the handler as itself instead of "error parsing the body"."""

    def __init__(
        self,
        status_code: int,
        error: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(status_code, detail, headers)
        self.error = error
        self.detail = detail
        self.extra = extra or {}

    def __str__(self) -> str:
        return self.detail


def error_response(
    status_code: int,
    error: str,
    detail: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **(extra or {})}, status_code, headers=headers)


def _field(loc: Sequence[int | str]) -> str:
    """`("body", "items_per_page")` -> `items_per_page`; `("query", "limit")` -> `limit`."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_fields(errors: Sequence[Any]) -> list[dict[str, str]]:
    fields = []
    for err in errors:
        message = str(err.get("msg", "is invalid"))
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        fields.append({"field": _field(err.get("loc", ())), "message": message})
    return fields


def validation_response(errors: Sequence[Any]) -> JSONResponse:
    fields = validation_fields(errors)
    first = fields[0] if fields else {"field": "body", "message": "is invalid"}
    more = f" (and {len(fields) - 1} more)" if len(fields) > 1 else ""
    detail = f"{first['field']}: {first['message']}{more}; fix the value and retry."
    return error_response(422, "invalid_request", detail, extra={"fields": fields})


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.error, exc.detail, dict(exc.headers or {}), exc.extra)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_response(exc.errors())


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's "error parsing the body": the same 422 as any other invalid input, naming the body.
        return validation_response([{"loc": ("body",), "msg": "The body must be valid JSON"}])
    code, detail = _HTTP_CODES.get(exc.status_code, ("http_error", "The request could not be served; see /docs."))
    return error_response(exc.status_code, code, detail, dict(exc.headers) if exc.headers else None)


DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError, OSError)


def database_unavailable(method: str, path: str, exc: Exception) -> JSONResponse:
    log.error("database error on %s %r: %s", method, path, type(exc).__name__)
    return error_response(
        503,
        "database_unavailable",
        "The database did not answer; check that PostgreSQL runs (`magflow db url`) and retry.",
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    return database_unavailable(request.method, request.url.path, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Logged with its stack trace on the server, never sent to the caller.
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        500, "internal_error", "magflow failed to serve this request; see the server log and report it."
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for error_type in DATABASE_ERRORS:
        app.add_exception_handler(error_type, _database_error)
    app.add_exception_handler(Exception, _unexpected)
