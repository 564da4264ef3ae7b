"""API tokens: created and revoked from the CLI, shown once, stored as a SHA-256 hash; scopes read < sync < admin.

Tokens are 256-bit random strings, so a plain SHA-256 is enough (no password stretching is needed) and a lookup
by hash is a single indexed query.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from magflow.models import ApiToken

Scope = Literal["read", "sync", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "sync", "admin")
SCOPE_RANK: dict[str, int] = {scope: rank for rank, scope in enumerate(SCOPES)}
TOKEN_PREFIX = "mgf_"
SHOWN_PREFIX = 12
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
DURATION_PATTERN = re.compile(r"^(?P<amount>\d{1,6})(?P<unit>[mhdw]?)$")
DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_EXPIRY = timedelta(days=3660)
# last_used_at is a hint for operators; writing it on every call would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenError(ValueError):
    """A token command that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name (used as the actor in audits) and its scope."""

    name: str
    scope: str

    def allows(self, needed: str) -> bool:
        return SCOPE_RANK.get(self.scope, -1) >= SCOPE_RANK[needed]


@dataclass(frozen=True)
class Expired:
    """A live (not revoked) token whose `--expires-in` has passed."""

    name: str
    expired_at: datetime


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def parse_duration(text: str) -> timedelta:
    """`90d`, `12h`, `30m`, `2w` (or a plain number of days) as a timedelta; TokenError when it is none of them."""
    match = DURATION_PATTERN.match(text.strip().lower())
    if match is None or int(match["amount"]) <= 0:
        raise TokenError(f"--expires-in must be a positive duration such as 90d, 12h, 30m or 2w (got {text!r})")
    duration = timedelta(**{DURATION_UNITS[match["unit"] or "d"]: int(match["amount"])})
    if duration > MAX_EXPIRY:
        raise TokenError(f"--expires-in {text!r} is over {MAX_EXPIRY.days} days; leave it out for no expiry")
    return duration


async def create_token(session: AsyncSession, name: str, scope: str, expires_in: timedelta | None = None) -> str:
    """Store a new token and return its plaintext, the only time it is ever available. The caller commits.

    A name held by a revoked token is free again (the revoked row stays, for the record); so is one held by an
    expired token, which is marked revoked now."""
    if scope not in SCOPE_RANK:
        raise TokenError(f"scope must be one of {', '.join(SCOPES)} (got {scope!r})")
    if not NAME_PATTERN.match(name):
        raise TokenError(
            f"token name {name!r} is not valid: use 1-64 letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit"
        )
    now = datetime.now(UTC)
    live = await session.scalar(select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None)))
    if live is not None:
        if live.expires_at is None or live.expires_at > now:
            raise TokenError(f"a token named {name!r} already exists; revoke it first or choose another name")
        live.revoked_at = now
        await session.flush()
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            name=name,
            scope=scope,
            token_hash=hash_token(plaintext),
            prefix=plaintext[:SHOWN_PREFIX],
            expires_at=now + expires_in if expires_in is not None else None,
        )
    )
    await session.flush()
    return plaintext


async def revoke_token(session: AsyncSession, name: str) -> bool:
    """Revoke the named token (it stops working at once); False when no live token has that name.

    The row stays, marked revoked, so `magflow token list` still shows it; the caller commits.
    """
    result = await session.execute(
        update(ApiToken)
        .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
        .returning(ApiToken.id)
    )
    return result.first() is not None


async def list_tokens(session: AsyncSession) -> list[dict[str, Any]]:
    """Every token without its secret: name, scope, prefix (to recognise it), created, last used, revoked,
    expires."""
    tokens = (await session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id))).all()
    return [
        {
            "name": t.name,
            "scope": t.scope,
            "prefix": t.prefix,
            "created_at": t.created_at,
            "last_used_at": t.last_used_at,
            "revoked_at": t.revoked_at,
            "expires_at": t.expires_at,
        }
        for t in tokens
    ]


async def authenticate(session: AsyncSession, plaintext: str) -> Principal | Expired | None:
    """The principal of a live token, Expired for one past its expiry, or None (unknown or revoked); notes when
    a live token was last used (at most once a minute).

    The caller commits (the last-used note is the only write)."""
    if not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > 200:
        return None
    token = await session.scalar(
        select(ApiToken).where(ApiToken.token_hash == hash_token(plaintext), ApiToken.revoked_at.is_(None))
    )
    if token is None:
        return None
    now = datetime.now(UTC)
    if token.expires_at is not None and token.expires_at <= now:
        return Expired(name=token.name, expired_at=token.expires_at)
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        await session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
    return Principal(name=token.name, scope=token.scope)
