"""API-only settings, read from the environment (the shared Settings class belongs to the foundation)."""

from __future__ import annotations

import os
from dataclasses import dataclass

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"", "0", "false", "no", "off"})


class ApiSettingsError(ValueError):
    pass


def _flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise ApiSettingsError(f"{name} must be true or false (got {raw!r}); fix it in the environment")


@dataclass(frozen=True)
class ApiSettings:
    """`allow_local_reads`: GET calls from this machine (loopback) may omit the token and get read scope.

    Off by default. It exists for the guide's troubleshooting call that has no Authorization header; behind a
    reverse proxy on the same host every caller looks local unless the proxy sets X-Forwarded-For.
    """

    allow_local_reads: bool = False

    @classmethod
    def from_env(cls) -> ApiSettings:
        return cls(allow_local_reads=_flag("MAGFLOW_API_ALLOW_LOCAL_READS"))
