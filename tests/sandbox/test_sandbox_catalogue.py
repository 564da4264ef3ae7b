"""The generated data carries the quirks real eMAG payloads show."""

from __future__ import annotations

from magflow.testing.sandbox import Sandbox


def test_catalogue_looks_like_real_emag_data(sandbox: Sandbox) -> None:
    products = sandbox.state.truth("main") + sandbox.state.truth("fbe")
    assert any(ch in p["name"] for p in products for ch in "șțăâî")
    assert all("&#" in p["description"] for p in products if any(ord(c) > 127 for c in p["name"]))
    assert {len(p["images"]) for p in products} <= set(range(1, 9))
    assert {p["status"] for p in products} == {0, 1, 2}
    assert {type(p["offer_validation_status"]) for p in products} == {list, dict}
    assert {type(p["ownership"]) for p in products} == {int, bool}
    assert {type(p["manufacturer"]) for p in products} == {bool}
    assert all(len(p["part_number"]) <= 25 and p["currency"] == "RON" for p in products)
    assert all(round(p["sale_price"], 4) == p["sale_price"] for p in products)
    assert any(len(p["stock"]) > 1 for p in products)
    assert all(p["general_stock"] == sum(s["value"] for s in p["stock"]) for p in products)
    assert all("commission" in p and "start_date" in p for p in products)  # undocumented keys
