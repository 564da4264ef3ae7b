from __future__ import annotations

import json
import time

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
