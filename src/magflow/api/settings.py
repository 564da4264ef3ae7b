"""API-only settings, taken from the shared Settings, and the start-up checks that refuse unsafe combinations."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from magflow.config import Settings, SettingsError

DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1"
# `magflow serve`'s connection limits (see magflow.api.server).
DEFAULT_LIMIT_CONCURRENCY = 100
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_KEEP_ALIVE_TIMEOUT = 5
METRICS_TOKEN_MIN_LENGTH = 24


@dataclass(frozen=True)
class ApiSettings:
    """What the API enforces on every request.

    - `allow_local_reads` (MAGFLOW_API_ALLOW_LOCAL_READS): GET calls that reach the server straight from this
      machine may omit the token and get read scope. "Straight" means the raw peer is a loopback address and the
      request carries no forwarding header (X-Forwarded-For, Forwarded, X-Real-IP): a request relayed by a proxy
      is never local, whatever address the proxy forwards. Off by default.
    - `max_body_bytes` (MAGFLOW_API_MAX_BODY_BYTES): the largest request body, by Content-Length and as read.
    - `docs` (MAGFLOW_API_DOCS): serve /docs, /redoc and /openapi.json (turn off in production if unused).
    - `metrics_token` (MAGFLOW_METRICS_TOKEN): a secret Prometheus sends as a bearer token to /metrics and the
      full /health/ready; it opens nothing else. API tokens with read scope work there too.
    - `auth_failures_per_minute` (MAGFLOW_API_AUTH_FAILURES_PER_MINUTE): unknown tokens a client address may send
      in a minute before its token calls get 429; 0 turns the throttle off. Direct local callers are exempt.
    """

    allow_local_reads: bool = False
    max_body_bytes: int = 1024 * 1024
    docs: bool = True
    metrics_token: str | None = None
    auth_failures_per_minute: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiSettings:
        metrics = settings.magflow_metrics_token.get_secret_value() if settings.magflow_metrics_token else ""
        if metrics and len(metrics) < METRICS_TOKEN_MIN_LENGTH:
            raise SettingsError(
                f"MAGFLOW_METRICS_TOKEN must be at least {METRICS_TOKEN_MIN_LENGTH} characters; "
                "generate one with `openssl rand -hex 32` and set it in the environment or .env"
            )
        return cls(
            allow_local_reads=settings.magflow_api_allow_local_reads,
            max_body_bytes=settings.magflow_api_max_body_bytes,
            docs=settings.magflow_api_docs,
            metrics_token=metrics or None,
            auth_failures_per_minute=settings.magflow_api_auth_failures_per_minute,
        )


def trusts_every_proxy(forwarded_allow_ips: str) -> bool:
    """True when the proxy trust list admits any address: `*`, or a network such as 0.0.0.0/0 or ::/0."""
    for entry in (part.strip() for part in forwarded_allow_ips.split(",")):
        if entry == "*":
            return True
        try:
            if ipaddress.ip_network(entry, strict=False).prefixlen == 0:
                return True
        except ValueError:
            continue  # a host name or a unix socket path: not a wildcard
    return False


def forwarded_allow_ips_from_env() -> str:
    """The trust list uvicorn uses when none is given: FORWARDED_ALLOW_IPS, else loopback only."""
    return os.environ.get("FORWARDED_ALLOW_IPS") or DEFAULT_FORWARDED_ALLOW_IPS


def check_proxy_trust(api: ApiSettings, forwarded_allow_ips: str) -> None:
    """Refuse to serve token-free local reads when every proxy is trusted to name the client's address."""
    if api.allow_local_reads and trusts_every_proxy(forwarded_allow_ips):
        raise SettingsError(
            f"MAGFLOW_API_ALLOW_LOCAL_READS=true cannot be used while every proxy is trusted "
            f"(forwarded allow-ips {forwarded_allow_ips!r}): list your proxy's address in FORWARDED_ALLOW_IPS "
            "(or --forwarded-allow-ips), or turn local reads off"
        )
