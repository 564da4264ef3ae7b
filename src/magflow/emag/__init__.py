"""The eMAG marketplace client: transport, rate budget, retries, typed errors, payload parsing."""

from magflow.emag.client import EmagClient
from magflow.emag.config import (
    DEFAULT_BASE_URL,
    REQUEST_FORMATS,
    AccountConfig,
    Bucket,
    RateLimits,
    RequestFormat,
    RequestFormatSource,
)
from magflow.emag.connection import ConnectionVerdict
from magflow.emag.deep import CheckLine, DeepReport, combined_estimate, deep_check
from magflow.emag.detect import Detection, StyleTrial, detect_request_format
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
    "REQUEST_FORMATS",
    "AccountConfig",
    "Bucket",
    "CheckLine",
    "ClientStats",
    "ConnectionVerdict",
    "DeepReport",
    "Detection",
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
    "RequestFormat",
    "RequestFormatSource",
    "StyleTrial",
    "combined_estimate",
    "deep_check",
    "detect_request_format",
]
