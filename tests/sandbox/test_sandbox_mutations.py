from __future__ import annotations

import httpx

from magflow.sandbox import SandboxState
from magflow.testing.sandbox import Sandbox, read, read_all


def test_mutations_show_up_in_reads_and_truth(sandbox: Sandbox) -> None:
    before = {p["id"]: p for p in sandbox.state.truth("main")}
    changed = sandbox.state.mutate("main", 10, fields=("sale_price", "stock", "name", "status"))
    with sandbox.client() as http:
        after = {p["id"]: p for p in read_all(http)}
    assert after == {p["id"]: p for p in sandbox.state.truth("main")}
    assert sorted(i for i in before if before[i] != after[i]) == changed
    for product_id in changed:
        old, new = before[product_id], after[product_id]
        assert old["sale_price"] != new["sale_price"] and old["name"] != new["name"]
        assert old["status"] != new["status"] and old["general_stock"] != new["general_stock"]


def test_mutations_are_deterministic() -> None:
    one, two = SandboxState(products_per_account=200, seed=3), SandboxState(products_per_account=200, seed=3)
    assert one.mutate("fbe", 5) == two.mutate("fbe", 5)
    assert one.delete_products("fbe", 5) == two.delete_products("fbe", 5)
    assert one.truth("fbe") == two.truth("fbe")


def test_added_and_deleted_products(sandbox: Sandbox) -> None:
    added = sandbox.state.add_products("fbe", 7)
    deleted = sandbox.state.delete_products("fbe", 4)
    with sandbox.client("fbe") as http:
        ids = [p["id"] for p in read_all(http)]
        count = read(http, "product_offer/count").json()["results"]["noOfItems"]
    assert set(added) <= set(ids) and not set(deleted) & set(ids)
    assert len(ids) == 303 and count == "303"
    assert ids == [p["id"] for p in sandbox.state.truth("fbe")]
    assert min(added) > max(i for i in ids if i not in added)


def test_control_api_mutates_and_reads_back_the_truth(sandbox: Sandbox) -> None:
    token = {"X-Sandbox-Token": sandbox.state.control_token}
    with httpx.Client(base_url=sandbox.control_url, headers=token) as control, sandbox.client() as http:
        changed = control.post("/main/mutate", json={"n": 3, "fields": ["sale_price"]}).json()["ids"]
        added = control.post("/main/add", json={"n": 2}).json()["ids"]
        truth = control.post("/main/truth").json()
        assert len(changed) == 3 and len(added) == 2
        assert truth == read_all(http)
        counters = control.post("/main/counters").json()
        assert counters["count_429"] == 0 and counters["max_requests_in_any_second"] >= 1
        assert control.post("/reset").status_code == 200
        assert len(read_all(http)) == 300
