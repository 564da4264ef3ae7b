"""Building eMAG clients for the configured accounts from the settings, and the body style each account uses.

An account's request format (body style) comes, strongest first, from EMAG_<ACCOUNT>_REQUEST_FORMAT, from the
style `magflow test-connection --detect` recorded in emag_account_state, from EMAG_REQUEST_FORMAT, else json.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.config import ACCOUNTS, AccountName, Settings
from magflow.db.engine import session_factory
from magflow.emag import (
    REQUEST_FORMATS,
    AccountConfig,
    Detection,
    InProcessRateBudget,
    RateBudget,
    RateLimits,
    RedisRateBudget,
    RequestFormat,
    RequestFormatSource,
)
from magflow.models import EmagAccountState

# Sources a recorded style may override: it is weaker only than the account's own setting (and code).
_OVERRIDABLE: frozenset[RequestFormatSource] = frozenset({"setting", "default"})


class AccountNotConfiguredError(ValueError):
    pass


def rate_limits(settings: Settings) -> RateLimits:
    return RateLimits(
        per_second=settings.emag_rate_limit_per_second,
        per_minute=settings.emag_rate_limit_per_minute,
        orders_per_second=settings.emag_order_rate_limit_per_second,
        orders_per_minute=settings.emag_order_rate_limit_per_minute,
    )


def account_config(settings: Settings, account: AccountName) -> AccountConfig:
    if not settings.has_credentials(account):
        upper = account.upper()
        raise AccountNotConfiguredError(
            f"account {account} has no credentials: set EMAG_{upper}_USERNAME and EMAG_{upper}_PASSWORD "
            "(or leave both accounts unset to use the built-in sandbox from the CLI)"
        )
    return AccountConfig(
        account=account,
        username=settings.username(account),
        password=settings.password(account).get_secret_value(),
        base_url=settings.base_url(account),
        timeout_seconds=settings.emag_request_timeout_seconds,
        connect_timeout_seconds=settings.emag_connect_timeout_seconds,
        max_attempts=settings.emag_max_attempts,
        max_response_bytes=settings.emag_max_response_bytes,
        detailed_log=settings.detailed_log(account),
        **_request_format(settings, account),
    )


def _request_format(settings: Settings, account: AccountName) -> dict[str, Any]:
    style, source = request_format_of(settings, account)
    return {"request_format": style, "request_format_source": source}


def request_format_of(
    settings: Settings, account: AccountName, recorded: RecordedFormat | None = None
) -> tuple[RequestFormat, RequestFormatSource]:
    """The style an account's requests use and where it comes from (see the module docstring)."""
    own = settings.request_format(account)
    if own is not None:
        return own, "account_setting"
    if recorded is not None:
        return recorded.request_format, "recorded"
    return settings.emag_request_format, "setting" if "emag_request_format" in settings.model_fields_set else "default"


def configured_accounts(settings: Settings) -> dict[str, AccountConfig]:
    return {a: account_config(settings, a) for a in ACCOUNTS if settings.has_credentials(a)}


_PROCESS_BUDGETS: dict[RateLimits, InProcessRateBudget] = {}


def rate_budget(settings: Settings) -> RateBudget:
    """The shared Redis budget when Redis is configured (every process draws from it); otherwise this process's
    one budget per limit set, so a sync, a connection check and an API call of one process never add up past
    eMAG's limit (processes without Redis do not know of each other: run one, or configure REDIS_URL)."""
    limits = rate_limits(settings)
    if settings.redis_url:
        return RedisRateBudget(settings.redis_url, limits, timeout_seconds=settings.redis_timeout_seconds)
    return _PROCESS_BUDGETS.setdefault(limits, InProcessRateBudget(limits))


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedFormat:
    """A request format found by `magflow test-connection --detect`, and when and how."""

    account: str
    request_format: RequestFormat
    detected_at: datetime | None
    detection: dict[str, Any]

    @classmethod
    def of(cls, state: EmagAccountState) -> RecordedFormat | None:
        style = next((f for f in REQUEST_FORMATS if f == state.request_format), None)
        if style is None:  # never recorded (or a style this version does not know)
            return None
        detection = dict(state.request_format_detection or {})
        return cls(state.account_type, style, state.request_format_detected_at, detection)


async def recorded_formats(engine: AsyncEngine) -> dict[str, RecordedFormat]:
    async with session_factory(engine)() as session:
        rows = (await session.scalars(select(EmagAccountState))).all()
    found = (RecordedFormat.of(row) for row in rows)
    return {r.account: r for r in found if r is not None}


async def with_recorded_formats(engine: AsyncEngine, configs: Mapping[str, AccountConfig]) -> dict[str, AccountConfig]:
    """The configs with each account's recorded style applied where no account setting overrides it."""
    recorded = await recorded_formats(engine)
    applied: dict[str, AccountConfig] = {}
    for account, config in configs.items():
        found = recorded.get(account)
        if found is not None and config.request_format_source in _OVERRIDABLE:
            config = dataclasses.replace(config, request_format=found.request_format, request_format_source="recorded")
        applied[account] = config
    return applied


async def record_request_format(engine: AsyncEngine, detection: Detection, detected_by: str) -> None:
    """Remember the style `detection` found for its account, with when and how it was found."""
    values = {
        "account_type": detection.account,
        "request_format": detection.found,
        "request_format_detected_at": datetime.now(UTC),
        "request_format_detection": {**detection.evidence(), "detected_by": detected_by},
    }
    stmt = pg_insert(EmagAccountState).values(**values)
    async with engine.begin() as conn:
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[EmagAccountState.account_type],
                set_={k: stmt.excluded[k] for k in values if k != "account_type"},
            )
        )
