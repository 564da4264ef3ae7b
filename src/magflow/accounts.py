"""Building eMAG clients for the configured accounts from the settings."""

from __future__ import annotations

from magflow.config import ACCOUNTS, AccountName, Settings
from magflow.emag import AccountConfig, InProcessRateBudget, RateBudget, RateLimits, RedisRateBudget


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
        detailed_log=settings.detailed_log(account),
    )


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
