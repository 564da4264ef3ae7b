from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from magflow.sandbox.orders import now_local
from magflow.testing.sandbox import Sandbox, read

FMT = "%Y-%m-%d %H:%M:%S"


def test_order_read_defaults_to_seller_fulfilled_orders(sandbox: Sandbox) -> None:
    truth = sandbox.state.orders_truth("fbe")
    with sandbox.client("fbe") as http:
        default = read(http, "order/read").json()["results"]
        fbe_type = read(http, "order/read", type=2).json()["results"]
        count = read(http, "order/count").json()["results"]
    assert {o["type"] for o in truth} == {2, 3}
    assert {o["type"] for o in default} == {3}
    assert {o["type"] for o in fbe_type} == {2}
    assert count["noOfItems"] == str(len(truth)) == "300"


def test_status_filter_accepts_a_list(sandbox: Sandbox) -> None:
    with sandbox.client() as http:
        rows = read(http, "order/read", status=[0, 1], itemsPerPage=100).json()["results"]
    assert rows and {o["status"] for o in rows} == {0, 1}


@pytest.mark.parametrize(
    "data",
    [
        {"createdAfter": "2025-01-01 00:00:00", "createdBefore": "2025-02-15 00:00:00"},
        {"modifiedBefore": "2025-01-01 00:00:00"},
        {"createdAfter": "01/01/2025"},
    ],
)
def test_bad_date_windows_are_validation_errors(sandbox: Sandbox, data: dict[str, str]) -> None:
    with sandbox.client() as http:
        answered = read(http, "order/read", **data)
        sandbox.state.set_quirks(error_style="http400")
        refused = read(http, "order/read", **data)
    field = next(iter(data)) if len(data) == 1 else "createdBefore"
    assert answered.status_code == 200
    assert answered.json() == {
        "isError": True,
        "messages": [answered.json()["errors"][0]["message"]],
        "results": [],
        "errors": [{"message": answered.json()["messages"][0], "field": field}],
    }
    assert refused.status_code == 400
    assert refused.json()["message"] == "Validation errors in your request"
    assert refused.json()["errors"] == answered.json()["errors"]


def test_new_orders_acknowledge_and_the_modified_window(sandbox: Sandbox) -> None:
    start = (now_local() - timedelta(seconds=2)).strftime(FMT)
    new = sandbox.state.add_orders("main", 2)
    window = {"modifiedAfter": start, "modifiedBefore": (now_local() + timedelta(days=1)).strftime(FMT)}
    with sandbox.client() as http:
        recent = read(http, "order/read", **window).json()["results"]
        assert sorted(o["id"] for o in recent) == new and {o["status"] for o in recent} == {1}
        assert read(http, f"order/acknowledge/{new[0]}").json()["isError"] is False
        acknowledged = read(http, "order/read", id=new[0]).json()["results"][0]
        assert read(http, "order/acknowledge/1").json()["isError"] is True
    assert acknowledged["status"] == 2
    assert datetime.strptime(acknowledged["modified"], FMT) >= datetime.strptime(start, FMT)


def test_vat_rates_are_romanias_since_august_2025(sandbox: Sandbox) -> None:
    with sandbox.client() as http:
        rates = read(http, "vat/read").json()["results"]
    assert {(r["vat_rate"], r["is_default"]) for r in rates} == {(0.21, 1), (0.11, 0), (0.0, 0)}
    vat_ids = {r["vat_id"] for r in rates}
    assert {p["vat_id"] for p in sandbox.state.truth("main")} <= vat_ids, "every offer's vat_id is a listed rate"
