"""API-only settings, taken from the shared Settings."""

from __future__ import annotations

from dataclasses import dataclass

from magflow.config import Settings


@dataclass(frozen=True)
class ApiSettings:
    """`allow_local_reads` (MAGFLOW_API_ALLOW_LOCAL_READS): GET calls from this machine (loopback) may omit the
    token and get read scope.

    Off by default. It exists for the guide's troubleshooting call that has no Authorization header; behind a
    reverse proxy on the same host every caller looks local unless the proxy sets X-Forwarded-For.
    """

    allow_local_reads: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiSettings:
        return cls(allow_local_reads=settings.magflow_api_allow_local_reads)
