"""The eMAG marketplace client: transport, rate budget, retries, typed errors, payload parsing."""

from magflow.emag.client import EmagClient
from magflow.emag.config import DEFAULT_BASE_URL, AccountConfig, Bucket, RateLimits
from magflow.emag.connection import ConnectionVerdict
from magflow.emag.errors import (
    EmagApiError,
    EmagAuthError,
    EmagError,
    EmagIpNotWhitelistedError,
    EmagRateLimitedError,
    EmagRequestError,
    EmagTransientError,
)
from magflow.emag.payloads import PayloadError, ProductCount, ProductOffer, ProductPage, RejectedOffer
from magflow.emag.ratelimit import InProcessRateBudget, RateBudget, RedisRateBudget
from magflow.emag.transport import ClientStats

__all__ = [
    "DEFAULT_BASE_URL",
    "AccountConfig",
    "Bucket",
    "ClientStats",
    "ConnectionVerdict",
    "EmagApiError",
    "EmagAuthError",
    "EmagClient",
    "EmagError",
    "EmagIpNotWhitelistedError",
    "EmagRateLimitedError",
    "EmagRequestError",
    "EmagTransientError",
    "InProcessRateBudget",
    "PayloadError",
    "ProductCount",
    "ProductOffer",
    "ProductPage",
    "RateBudget",
    "RateLimits",
    "RedisRateBudget",
    "RejectedOffer",
]
