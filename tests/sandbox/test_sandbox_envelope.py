"""The envelope as eMAG really sends it: each variant behind a switch, over real HTTP (issue 13)."""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx
import pytest

from magflow.testing.sandbox import Sandbox, read


def test_by_default_a_rejected_filter_is_http_200_is_error_and_successes_carry_an_empty_errors_list(
    sandbox: Sandbox,
) -> None:
    with sandbox.client() as http:
        success = read(http, "product_offer/count").json()
        rejected = read(http, status="active")
        sandbox.state.set_quirks(error_style="http400")
        old_style = read(http, status="active")
    assert success["isError"] is False and success["errors"] == []
    assert rejected.status_code == 200
    assert rejected.json() == {
        "isError": True,
        "messages": ["status must be an integer"],
        "results": [],
        "errors": [{"message": "status must be an integer", "field": "status"}],
    }
    assert old_style.status_code == 400
    assert old_style.json() == {
        "message": "Validation errors in your request",
        "errors": [{"message": "status must be an integer", "field": "status"}],
    }


def test_is_error_as_a_string_or_missing_and_no_errors_key(sandbox: Sandbox) -> None:
    with sandbox.client() as http, sandbox.control() as control:
        control.post("/quirks", json={"iserror": "string", "errors_key": False})
        as_string = read(http, itemsPerPage=3).json()
        refused = read(http, "order/acknowledge/1").json()
        control.post("/quirks", json={"iserror": "missing"})
        missing = read(http, itemsPerPage=3).json()
    assert as_string["isError"] == "false" and refused["isError"] == "true"
    assert "errors" not in as_string and len(as_string["results"]) == 3
    assert "isError" not in missing and len(missing["results"]) == 3


def test_messages_can_be_objects_with_a_code(sandbox: Sandbox) -> None:
    sandbox.state.set_quirks(message_objects=True)
    sandbox.state.set_ip_whitelisted(False, reported_ip="192.0.2.4")
    with sandbox.client() as http:
        body = read(http).json()
    assert body["messages"] == [{"message": "ERROR: Invalid vendor ip [192.0.2.4]", "code": 403}]


def test_results_can_be_an_object_keyed_by_position(sandbox: Sandbox) -> None:
    sandbox.state.set_quirks(results_object=True)
    with sandbox.client() as http:
        page = read(http, itemsPerPage=4).json()["results"]
        orders = read(http, "order/read", itemsPerPage=2).json()["results"]
        vat = read(http, "vat/read").json()["results"]
        beyond = read(http, currentPage=99).json()["results"]
        count = read(http, "product_offer/count").json()["results"]
    assert list(page) == ["0", "1", "2", "3"]
    assert [page[k] for k in page] == sandbox.state.truth("main")[:4]
    assert list(orders) == ["0", "1"] and list(vat) == ["0", "1", "2"]
    assert beyond == [], "PHP writes an empty array as []"
    assert count["noOfItems"] == "300"


def test_empty_objects_come_as_empty_lists_in_offers_and_orders(sandbox: Sandbox) -> None:
    sandbox.state.set_quirks(empty_objects_as_lists=True)
    with sandbox.client() as http:
        wire = read(http).content + read(http, "order/read").content
        rows = read(http).json()["results"]
    assert b"{}" not in wire
    assert any(row["family"] == [] for row in rows)
    assert any(row["offer_details"] == [] for row in rows) and any(isinstance(r["offer_details"], dict) for r in rows)
    assert b'"details":[]' in wire
    assert rows == sandbox.state.truth("main")[:100]


def test_gzip_compresses_every_answer_whatever_the_client_accepted(sandbox: Sandbox) -> None:
    sandbox.state.set_quirks(gzip=True)
    with sandbox.client(headers={"Accept-Encoding": "identity"}) as http:
        decoded = read(http, itemsPerPage=5)
        raw = http.build_request("POST", "/product_offer/read", json={"itemsPerPage": 5})
        streamed = http.send(raw, stream=True)
        compressed = b"".join(streamed.iter_raw())
        streamed.close()
    assert decoded.headers["content-encoding"] == "gzip"
    assert len(decoded.json()["results"]) == 5
    assert json.loads(gzip.decompress(compressed))["results"] == decoded.json()["results"]


def test_a_captive_proxy_answers_200_with_html_for_n_requests(sandbox: Sandbox) -> None:
    with sandbox.control() as control, sandbox.client() as http:
        control.post("/faults", json={"kind": "captive_html", "count": 2, "route": "*"})
        answers = [read(http, route) for route in ("product_offer/count", "vat/read", "vat/read")]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["content-type"] for a in answers[:2]] == ["text/html"] * 2
    assert all(a.content.startswith(b"<!DOCTYPE html>") for a in answers[:2])
    assert answers[2].json()["isError"] is False


@pytest.mark.parametrize("limits", [{}, {"rate_per_second": 3.0, "rate_per_minute": 180}])
@pytest.mark.parametrize("retry_after", [False, True])
def test_an_injected_429_carries_spent_rate_limit_headers_with_or_without_retry_after(
    make_sandbox: Any, retry_after: bool, limits: dict[str, Any]
) -> None:
    sandbox = make_sandbox(products=50, retry_after=retry_after, **limits)
    sandbox.state.faults.inject("429", count=1, route="product_offer/count")
    with sandbox.client() as http:
        refused = read(http, "product_offer/count")
        passed = read(http, "product_offer/count")
    assert refused.status_code == 429 and refused.json() == {"message": "API rate limit exceeded"}
    assert refused.headers["x-ratelimit-limit-3second"] == "9"
    assert refused.headers["x-ratelimit-remaining-second"] == refused.headers["x-ratelimit-remaining-3second"] == "0"
    assert ("retry-after" in refused.headers) is retry_after
    assert passed.status_code == 200


def test_a_connection_reset_in_the_middle_of_a_body(sandbox: Sandbox) -> None:
    sandbox.state.faults.inject("reset_mid_body", route="order/read")
    with sandbox.client() as http:
        with http.stream("POST", "/order/read", json={}) as response:
            assert response.status_code == 200
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                response.read()
        assert len(read(http, "order/read").json()["results"]) == 100


def test_a_slow_page_is_answered_in_full_after_its_delay(sandbox: Sandbox) -> None:
    sandbox.state.faults.inject("slow", page=2, delay_seconds=1.0)
    with sandbox.client() as http:
        fast = read(http, currentPage=1, itemsPerPage=50)
        slow = read(http, currentPage=2, itemsPerPage=50)
    assert fast.status_code == slow.status_code == 200
    assert [r["id"] for r in slow.json()["results"]] == [p["id"] for p in sandbox.state.truth("main")[50:100]]
    assert sandbox.state.faults.triggered == ["slow"]


def test_the_slow_delay_is_set_over_the_control_api(sandbox: Sandbox) -> None:
    with sandbox.control() as control, sandbox.client(timeout=0.3) as http:
        control.post("/faults", json={"kind": "slow", "delay_seconds": 5})
        with pytest.raises(httpx.ReadTimeout):
            read(http)
        assert read(http).status_code == 200
