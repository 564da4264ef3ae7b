from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from magflow.testing.sandbox import Sandbox, read


@pytest.mark.parametrize(
    ("kind", "status", "marker"), [("500", 500, b"500"), ("502_html", 502, b"Bad Gateway"), ("504", 504, b"")]
)
def test_gateway_errors_answer_html_or_nothing_then_recover(
    sandbox: Sandbox, kind: str, status: int, marker: bytes
) -> None:
    sandbox.state.faults.inject(kind)
    with sandbox.client() as http:
        failed = read(http)
        assert failed.status_code == status
        assert marker in failed.content
        assert not failed.headers["content-type"].startswith("application/json")
        assert read(http).json()["isError"] is False


def test_timeout_outlives_the_client_read_timeout(sandbox: Sandbox) -> None:
    sandbox.state.faults.inject("timeout", timeout_seconds=5)
    with sandbox.client(timeout=0.3) as http:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            read(http)
        assert time.monotonic() - started < 2
        assert read(http).status_code == 200


def test_reset_drops_the_connection_without_a_response(sandbox: Sandbox) -> None:
    sandbox.state.faults.inject("reset")
    with sandbox.client() as http:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            read(http)
        assert read(http).status_code == 200


def test_malformed_json_page(sandbox: Sandbox) -> None:
    sandbox.state.faults.inject("malformed_json")
    with sandbox.client() as http:
        response = read(http)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_corrupt_product_spoils_one_product_of_the_page(sandbox: Sandbox) -> None:
    sandbox.state.faults.inject("corrupt_product")
    with sandbox.client() as http:
        results = read(http, itemsPerPage=10).json()["results"]
    bad = [p for p in results if not isinstance(p["sale_price"], float)]
    assert len(results) == 10 and len(bad) == 1
    assert bad[0]["sale_price"] == "abc" and not isinstance(bad[0]["stock"], list)


def test_ok_without_iserror(sandbox: Sandbox) -> None:
    sandbox.state.faults.inject("ok_without_iserror")
    with sandbox.client() as http:
        body = read(http).json()
    assert "isError" not in body and len(body["results"]) == 100


def test_a_fault_can_target_one_page(sandbox: Sandbox) -> None:
    sandbox.state.faults.inject("500", count=2, page=3)
    with sandbox.client() as http:
        statuses = [read(http, currentPage=page, itemsPerPage=50).status_code for page in (1, 2, 3, 4, 3, 3)]
    assert statuses == [200, 200, 500, 200, 500, 200]


def test_error_rate_is_random_but_seeded(sandbox: Sandbox) -> None:
    def run() -> list[int]:
        sandbox.state.faults.set_error_rate(0.3, kinds=("500", "504"), seed=7)
        with sandbox.client() as http:
            return [read(http, itemsPerPage=1).status_code for _ in range(40)]

    first, second = run(), run()
    assert first == second
    assert 4 <= sum(s != 200 for s in first) <= 20
    assert set(first) <= {200, 500, 504}


def test_latency_delays_responses(sandbox: Sandbox) -> None:
    sandbox.state.faults.set_latency(250)
    with sandbox.client() as http:
        started = time.monotonic()
        read(http, itemsPerPage=1)
        assert time.monotonic() - started >= 0.25
        sandbox.state.faults.clear()
        started = time.monotonic()
        read(http, itemsPerPage=1)
        assert time.monotonic() - started < 0.2


def test_faults_over_the_control_api(sandbox: Sandbox) -> None:
    token = {"X-Sandbox-Token": sandbox.state.control_token}
    with httpx.Client(base_url=sandbox.control_url, headers=token) as control, sandbox.client() as http:
        assert control.post("/faults", json={"kind": "502_html"}).json()["pending"] == 1
        assert read(http).status_code == 502
        assert control.post("/faults", json={"kind": "nope"}).status_code == 400


@pytest.mark.parametrize(
    ("route", "other"),
    [
        ("product_offer/count", "product_offer/read"),
        ("order/read", "order/count"),
        ("order/count", "order/read"),
        ("vat/read", "product_offer/count"),
    ],
)
def test_a_fault_can_target_any_route_and_leaves_the_others_alone(sandbox: Sandbox, route: str, other: str) -> None:
    with sandbox.control() as control, sandbox.client() as http:
        control.post("/faults", json={"kind": "502_html", "count": 2, "route": route})
        assert read(http, other).status_code == 200
        assert [read(http, route).status_code for _ in range(3)] == [502, 502, 200]


def test_acknowledge_can_fail_and_can_be_applied_then_answered_500(sandbox: Sandbox) -> None:
    first, second = sandbox.state.add_orders("main", 2)
    status = {o["id"]: o["status"] for o in sandbox.state.orders_truth("main")}
    assert status[first] == status[second] == 1
    sandbox.state.faults.inject("500", route="order/acknowledge")
    sandbox.state.faults.inject("applied_then_500", route="order/acknowledge")
    with sandbox.client() as http:
        failed = read(http, f"order/acknowledge/{first}")
        applied = read(http, f"order/acknowledge/{second}")
    status = {o["id"]: o["status"] for o in sandbox.state.orders_truth("main")}
    assert (failed.status_code, status[first]) == (500, 1), "a plain 500: nothing happened"
    assert (applied.status_code, status[second]) == (500, 2), "applied_then_500: acknowledged, then a 500"
    assert b"500 Internal Server Error" in applied.content


def test_applied_then_500_on_a_page_read_counts_the_page_as_served(sandbox: Sandbox) -> None:
    handle = sandbox.state.after_reads(1, lambda: "ran", account="main")
    sandbox.state.faults.inject("applied_then_500", page=1)
    with sandbox.client() as http:
        assert read(http).status_code == 500
    assert handle.wait() == "ran"


def test_faults_on_every_route_with_star_and_from_specs(make_sandbox: Any) -> None:
    sandbox = make_sandbox(products=50, faults=["captive_html:2@*", "500@vat/read"])
    with sandbox.client() as http:
        statuses = [read(http, route).status_code for route in ("order/count", "vat/read", "vat/read", "vat/read")]
    assert statuses == [200, 200, 500, 200]
    assert sandbox.state.faults.triggered == ["captive_html", "captive_html", "500"]
    sandbox.state.reset()
    assert sandbox.state.faults.pending() == 3, "a reset injects the constructed faults again"
    with pytest.raises(ValueError, match="KIND"):
        make_sandbox(products=5, faults=["500:many"])
    with pytest.raises(ValueError, match="unknown fault kind"):
        make_sandbox(products=5, faults=["418"])


def test_ok_without_iserror_and_empty_results_on_order_reads(sandbox: Sandbox) -> None:
    sandbox.state.faults.inject("ok_without_iserror", route="order/read")
    sandbox.state.faults.inject("empty_page", route="order/read")
    with sandbox.client() as http:
        missing = read(http, "order/read").json()
        empty = read(http, "order/read").json()
    assert "isError" not in missing and len(missing["results"]) == 100
    assert empty["isError"] is False and empty["results"] == []
