"""Issue 19, item 8: without a token the monitoring routes say only what a load balancer needs, /metrics needs a
token (an API token or MAGFLOW_METRICS_TOKEN), the docs can be turned off, and every other call needs a token."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from .conftest import assert_error, make_tokens

METRICS_TOKEN = "metrics-" + "s3cr3t" * 6
CLOSED_REDIS = "redis://127.0.0.1:1/0"


async def test_anonymous_readiness_names_no_account_address_or_message(
    sandbox: Any, start_api: Any, clean_engine: AsyncEngine
) -> None:
    tokens = await make_tokens(clean_engine)
    server = start_api(sandbox.base_url, redis_url=CLOSED_REDIS, magflow_metrics_token=METRICS_TOKEN)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        anonymous = await http.get("/health/ready")
        full = await http.get("/health/ready", headers={"Authorization": f"Bearer {tokens['read']}"})
        for_prometheus = await http.get("/health/ready", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert anonymous.status_code == full.status_code == for_prometheus.status_code == 200
    report = anonymous.json()
    assert report["status"] == "degraded"  # the broker is down, and the accounts never synced
    assert report["checks"] == {"database": {"status": "ok"}, "broker": {"status": "down"}}
    assert set(report) == {"status", "checked_at", "checks", "detail"}
    for revealing in ("127.0.0.1:1", '"main"', '"fbe"', "problem"):
        assert revealing not in anonymous.text, revealing
    for detailed in (full.json(), for_prometheus.json()):
        assert set(detailed["checks"]["accounts"]) == {"main", "fbe"}
        assert "127.0.0.1:1" in detailed["checks"]["broker"]["error"]
        assert detailed["problems"]


async def test_metrics_need_an_api_token_or_the_metrics_token(
    sandbox: Any, start_api: Any, clean_engine: AsyncEngine
) -> None:
    tokens = await make_tokens(clean_engine)
    server = start_api(sandbox.base_url, magflow_metrics_token=METRICS_TOKEN)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        assert_error(await http.get("/metrics"), 401, "missing_token")
        assert_error(await http.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401, "invalid_token")
        for token in (tokens["read"], METRICS_TOKEN):
            page = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert page.status_code == 200 and "magflow_sync_running" in page.text
        # The metrics token opens the monitoring routes only, not the API.
        as_api = await http.get("/api/v1/emag/products/status", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert_error(as_api, 401, "invalid_token")


async def test_a_short_metrics_token_stops_the_server_from_starting(start_api: Any) -> None:
    from magflow.config import SettingsError

    try:
        start_api(None, magflow_metrics_token="short")
    except SettingsError as exc:
        assert "MAGFLOW_METRICS_TOKEN" in str(exc) and "openssl rand" in str(exc)
    else:
        raise AssertionError("a 5-character metrics token was accepted")


async def test_docs_can_be_turned_off(sandbox: Any, start_api: Any, clean_engine: AsyncEngine) -> None:
    tokens = await make_tokens(clean_engine)
    server = start_api(sandbox.base_url, magflow_api_docs=False)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
            assert_error(await http.get(path), 404, "not_found")
        status = await http.get("/api/v1/emag/products/status", headers={"Authorization": f"Bearer {tokens['read']}"})
        assert status.status_code == 200


def _example_path(template: str) -> str:
    examples = {"product_id": "00000000-0000-0000-0000-000000000000", "sync_id": "00000000-0000-0000-0000-000000000000"}
    return re.sub(r"\{(\w+)\}", lambda m: examples.get(m.group(1), "1"), template)


async def test_every_call_but_health_needs_a_token(sandbox: Any, start_api: Any) -> None:
    # What the README promises: without a token, only /health and the reduced /health/ready answer (and the docs).
    server = start_api(sandbox.base_url)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        schema = (await http.get("/openapi.json")).json()
        open_calls = []
        for template, operations in schema["paths"].items():
            for method in operations:
                response = await http.request(method.upper(), _example_path(template))
                if response.status_code != 401:
                    open_calls.append(f"{method.upper()} {template}: {response.status_code}")
    assert sorted(open_calls) == ["GET /health/ready: 200", "GET /health: 200"]
