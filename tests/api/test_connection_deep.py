"""POST /test-connection over HTTP against an eMAG stand-in: the guide's answer unchanged, paging proven, and
`?deep=true` with every line of the deep check, in the OpenAPI schema, never a secret."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.accounts import record_request_format
from magflow.emag import Detection, StyleTrial
from magflow.testing.standin import PASSWORDS, StandIn

from .conftest import PREFIX, ApiServer, make_tokens

GUIDE_KEYS = {"account_type", "status", "connected", "message", "product_count", "latency_ms"}
DEEP_CHECKS = [
    "credentials", "IP whitelist", "request format", "count vs listing", "platform", "currency", "clock",
    "rate limit", "catalogue", "full sync estimate",
]  # fmt: skip


@pytest.fixture
def emag() -> Iterator[StandIn]:
    with StandIn(products=7, variants=["rate_headers"], clock_skew_seconds=42) as server:
        yield server


def standin_settings(emag: StandIn) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for account in ("main", "fbe"):
        values[f"emag_{account}_username"] = f"{account}-user"
        values[f"emag_{account}_password"] = PASSWORDS[account]
        values[f"emag_{account}_base_url"] = emag.base_url
    return values


@pytest_asyncio.fixture
async def http(
    emag: StandIn, start_api: Callable[..., ApiServer], clean_engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    server = start_api(None, **standin_settings(emag))
    tokens = await make_tokens(clean_engine)
    headers = {"Authorization": f"Bearer {tokens['sync']}"}
    async with httpx.AsyncClient(base_url=server.base_url + PREFIX, headers=headers, timeout=60) as client:
        yield client


async def test_without_deep_the_guides_answer_is_unchanged_and_proves_paging(
    http: httpx.AsyncClient, emag: StandIn
) -> None:
    response = await http.post("/test-connection", params={"account_type": "main"})
    body = response.json()
    assert response.status_code == 200 and set(body) == GUIDE_KEYS
    assert body["status"] == "ok" and body["connected"] is True and body["product_count"] == 7
    assert "paging honoured" in body["message"]
    reads = [r.params for r in emag.reads_of()]
    assert reads == [{"currentPage": 1, "itemsPerPage": 1}, {"currentPage": 2, "itemsPerPage": 1}]


async def test_a_server_that_ignores_the_body_style_is_reported_with_what_to_run(
    http: httpx.AsyncClient, emag: StandIn
) -> None:
    emag.reads = "form"  # eMAG reading only form bodies; magflow sends json by default
    body = (await http.post("/test-connection", params={"account_type": "main"})).json()
    assert body["status"] == "paging_ignored" and body["connected"] is False
    assert body["message"].startswith("eMAG ignored the paging parameters with EMAG_REQUEST_FORMAT=json")
    assert body["message"].endswith("run `magflow test-connection --detect`")


async def test_the_recorded_request_format_is_used_by_the_check(
    http: httpx.AsyncClient, emag: StandIn, clean_engine: AsyncEngine
) -> None:
    emag.reads = "form"
    found = Detection("main", "form", [StyleTrial("form", True, "paging and filters honoured")], "found", 7)
    await record_request_format(clean_engine, found, "test")
    body = (await http.post("/test-connection", params={"account_type": "main", "deep": "true"})).json()
    assert body["status"] == "ok"
    assert body["deep"]["request_format"] == "form"
    assert "recorded by `magflow test-connection --detect`" in body["deep"]["request_format_origin"]
    status = (await http.get("/status")).json()
    assert status["request_formats"]["main"]["request_format"] == "form"
    assert status["request_formats"]["main"]["source"] == "recorded"
    assert status["request_formats"]["main"]["detected_by"] == "test"
    assert status["request_formats"]["fbe"] == {
        "request_format": "json", "source": "default", "detected_format": None, "detected_at": None,
        "detected_by": None, "detection": None,
    }  # fmt: skip


async def test_deep_answers_every_check_as_json_and_never_a_secret(http: httpx.AsyncClient, emag: StandIn) -> None:
    response = await http.post("/test-connection", params={"account_type": "fbe", "deep": "true"})
    body = response.json()
    deep = body["deep"]
    assert body["status"] == "ok" and deep["ok"] is True
    assert [c["name"] for c in deep["checks"]] == DEEP_CHECKS
    states = {c["name"]: c["state"] for c in deep["checks"]}
    assert states["credentials"] == states["IP whitelist"] == states["request format"] == "ok"
    assert states["count vs listing"] == "ok" and deep["listing_agrees"] is True
    assert (deep["paging"], deep["filters"], deep["product_count"]) == ("honoured", "honoured", 7)
    assert deep["platform"] is None and deep["host"] == "127.0.0.1"  # not an eMAG host
    assert deep["currencies_seen"] == ["RON"]
    assert 40 <= deep["clock_offset_seconds"] <= 44 and states["clock"] == "warn"
    assert deep["rate_limit_headers"] == {"X-RateLimit-Limit-3second": "9", "X-RateLimit-Remaining-3second": "8"}
    assert deep["full_sync_requests"] == 3  # one page and two counts
    assert deep["predicted_full_sync_seconds"] > 0 and deep["requests_used"] >= 5
    for password in PASSWORDS.values():
        assert password not in response.text


async def test_deep_turns_an_ip_refusal_into_what_to_whitelist(http: httpx.AsyncClient, emag: StandIn) -> None:
    emag.reported_ip = "198.51.100.23"
    emag.fail_next("ip_refused")
    body = (await http.post("/test-connection", params={"account_type": "main", "deep": "true"})).json()
    assert body["status"] == "ip_not_whitelisted" and body["deep"]["ok"] is False
    ip_line = next(c for c in body["deep"]["checks"] if c["name"] == "IP whitelist")
    assert ip_line == {
        "name": "IP whitelist", "state": "fail", "result": "refused: 198.51.100.23",
        "advice": "whitelist 198.51.100.23 in the eMAG seller portal",
    }  # fmt: skip


async def test_the_deep_parameter_and_its_answer_are_in_the_openapi_schema(http: httpx.AsyncClient) -> None:
    root = str(http.base_url).removesuffix(PREFIX + "/").removesuffix(PREFIX)
    async with httpx.AsyncClient() as plain:
        schema = (await plain.get(f"{root}/openapi.json")).json()
    operation = schema["paths"][f"{PREFIX}/test-connection"]["post"]
    assert {p["name"] for p in operation["parameters"]} >= {"account_type", "deep"}
    deep = schema["components"]["schemas"]["DeepCheck"]["properties"]
    assert {"checks", "clock_offset_seconds", "rate_limit_headers", "predicted_full_sync_seconds"} <= set(deep)
    status = schema["components"]["schemas"]["ConnectionResult"]["properties"]["status"]
    assert "paging_ignored" in str(status)
