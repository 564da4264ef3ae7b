"""Turning whatever URL an operator gives into the one async SQLAlchemy needs."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

from sqlalchemy.engine import URL, make_url


def to_async_url(url: str) -> URL:
    """`postgresql://...` (psql style) -> `postgresql+asyncpg://...`, keeping everything else."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    query = dict(parsed.query)
    sslmode = query.pop("sslmode", None)
    if sslmode is not None and sslmode != "disable":
        query["ssl"] = sslmode
    return parsed.set(drivername="postgresql+asyncpg", query=query)


def to_libpq_url(url: str | URL) -> str:
    """The same database as a plain `postgresql://` URL for psql and other tools."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def redact(url: str | URL) -> str:
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


def split_password(url: str) -> tuple[str, str | None]:
    """The URL without its password, and the password (decoded), so a tool can take it from its environment
    rather than its arguments, which every local user can read in `ps`. The rest of the URL stays as written."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not at or not colon:
        return url, None
    return urlunsplit(parts._replace(netloc=f"{user}@{hosts}")), unquote(password)
