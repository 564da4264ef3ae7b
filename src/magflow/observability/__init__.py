"""Logging setup, Prometheus metrics, and health checks.

Only the light modules are re-exported here: the eMAG client imports `magflow.observability.metrics`, so
this package must not import the client back (health, routes: import them from their modules).
"""

from magflow.observability.logging import configure_logging
from magflow.observability.metrics import (
    configure_metrics,
    record_budget_wait,
    record_emag_request,
    record_rate_limit_hit,
)

__all__ = [
    "configure_logging",
    "configure_metrics",
    "record_budget_wait",
    "record_emag_request",
    "record_rate_limit_hit",
]
