"""Quirks a model-based test of the sync needs: a lagging count, an unstable listing order, changes at an
exact point of a scan, empty pages mid-scan, GPSR shapes, and offers crafted field by field."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import httpx
import pytest

from magflow.testing.sandbox import Sandbox, read, read_all


def _count(http: httpx.Client) -> int:
    return int(read(http, "product_offer/count").json()["results"]["noOfItems"])


def _ids(http: httpx.Client, page: int, per_page: int = 100) -> list[int]:
    return [row["id"] for row in read(http, currentPage=page, itemsPerPage=per_page).json()["results"]]


def test_the_count_can_lag_behind_the_listing_or_run_ahead_of_it(sandbox: Sandbox, make_sandbox: Any) -> None:
    with sandbox.client() as http, sandbox.control() as control:
        assert _count(http) == 300
        sandbox.state.set_count_lag(5)
        assert _count(http) == 295 and len(read_all(http)) == 300
        assert control.post("/quirks", json={"count_lag": -3}).json()["count_lag"] == -3
        body = read(http, "product_offer/count", itemsPerPage=100).json()["results"]
        assert body == {"noOfItems": "303", "noOfPages": "4", "itemsPerPage": "100"}
    lagging = make_sandbox(products=120, count_lag=20)
    with lagging.client("fbe") as http:
        assert _count(http) == 100 and len(read_all(http)) == 120


def test_in_modified_order_an_edited_offer_moves_to_the_end_so_offset_paging_skips_and_repeats(
    sandbox: Sandbox,
) -> None:
    def scan(edit_on_page_one: int) -> list[int]:
        with sandbox.client() as http:
            first = _ids(http, 1)
            sandbox.state.set_field("main", first[edit_on_page_one], "sale_price", 1.5)
            return first + _ids(http, 2) + _ids(http, 3)

    stable = scan(10)
    assert sorted(stable) == stable and len(set(stable)) == 300, "id order: an edit moves nothing"
    sandbox.state.set_listing_order("modified")
    unstable = scan(20)
    seen = Counter(unstable)
    assert [i for i, n in seen.items() if n > 1] == [stable[20]], "the edited offer is read twice"
    assert set(stable) - set(unstable) == {stable[100]}, "the first offer of page 2 slid onto page 1, unread"
    assert [p["id"] for p in sandbox.state.truth("main")][-1] == stable[20]
    with sandbox.client() as http:
        (row,) = read(http, id=stable[20]).json()["results"]
        assert row["sale_price"] == 1.5
        added = sandbox.state.add_products("main", 2)
        mutated = sandbox.state.mutate("main", 3, fields=["name"])
        listed = [row["id"] for row in read_all(http)]
        assert listed[-3:] == mutated and set(added) <= set(listed)
        sandbox.state.set_listing_order("id")
        listed = [row["id"] for row in read_all(http)]
        assert listed == sorted(listed) and len(listed) == 302


def test_listing_order_is_a_fixture_keyword_too(make_sandbox: Any) -> None:
    sandbox = make_sandbox(products=50, listing_order="modified")
    changed = sandbox.state.mutate("fbe", 4, fields=["description", "characteristics", "images"])
    with sandbox.client("fbe") as http:
        assert sorted(row["id"] for row in read_all(http)[-4:]) == changed


def test_an_action_runs_after_exactly_n_pages_of_a_scan(sandbox: Sandbox) -> None:
    handle = sandbox.state.after_reads(2, lambda: sandbox.state.delete_products("main", 10), account="main")
    with sandbox.client() as http, sandbox.client("fbe") as fbe:
        before = [p["id"] for p in sandbox.state.truth("main")]
        read(fbe)  # another account's reads do not count
        sandbox.state.faults.inject("500", page=2)
        first = _ids(http, 1)
        assert read(http, currentPage=2).status_code == 500  # not a page served
        assert not handle.done.is_set()
        second = _ids(http, 2)
        deleted = handle.wait()
        third = _ids(http, 3)
    after = [p["id"] for p in sandbox.state.truth("main")]
    assert isinstance(deleted, list) and len(deleted) == 10
    assert first == before[:100] and second == before[100:200], "pages 1 and 2 come from the old catalogue"
    assert third == after[200:300], "page 3 from the new one"


def test_scheduled_actions_are_thread_safe_and_each_runs_once(sandbox: Sandbox) -> None:
    ran: list[int] = []
    lock = threading.Lock()

    def schedule(worker: int) -> None:
        for n in range(1, 26):
            sandbox.state.after_reads(n, lambda w=worker, n=n: _record(lock, ran, w * 100 + n))

    workers = [threading.Thread(target=schedule, args=(w,)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    with sandbox.client() as http:
        for page in range(30):
            read(http, currentPage=page % 3 + 1)
    assert sorted(ran) == sorted(w * 100 + n for w in range(4) for n in range(1, 26))
    assert sandbox.state.reads.pending() == 0


def _record(lock: threading.Lock, ran: list[int], value: int) -> None:
    with lock:
        ran.append(value)


def test_a_failing_action_still_serves_the_page_and_tells_the_test(sandbox: Sandbox) -> None:
    handle = sandbox.state.after_reads(1, lambda: sandbox.state.set_field("main", 1, "name", "x"))
    with sandbox.client() as http:
        assert len(_ids(http, 1)) == 100
    with pytest.raises(ValueError, match="offer 1 is not in the main catalogue"):
        handle.wait()


def test_after_reads_over_the_control_api(sandbox: Sandbox) -> None:
    with sandbox.control() as control, sandbox.client("fbe") as http:
        scheduled = control.post("/fbe/after_reads", json={"n": 1, "route": "add", "body": {"n": 4}})
        assert scheduled.json() == {"pending": 1}
        assert _count(http) == 300
        assert len(_ids(http, 1)) == 100
        assert _count(http) == 304
        bad = control.post("/fbe/after_reads", json={"n": 1, "route": "truth"})
        assert bad.status_code == 400


@pytest.mark.parametrize("kind", ["empty_page", "no_results"])
def test_a_page_in_the_middle_of_a_scan_can_come_back_empty_or_without_results(sandbox: Sandbox, kind: str) -> None:
    with sandbox.control() as control, sandbox.client() as http:
        control.post("/faults", json={"kind": kind, "page": 2})
        assert len(_ids(http, 1, per_page=50)) == 50
        body = read(http, currentPage=2, itemsPerPage=50).json()
        assert body["isError"] is False
        assert body.get("results", "missing") == ([] if kind == "empty_page" else "missing")
        assert _count(http) == 300, "the count still says the page has offers"
        assert len(_ids(http, 2, per_page=50)) == 50, "once"


def test_gpsr_details_are_flags_in_list_reads_and_details_in_a_read_by_id(sandbox: Sandbox) -> None:
    with sandbox.client() as http:
        rows = read_all(http)
        assert all(isinstance(r["manufacturer"], bool) and isinstance(r["eu_representative"], bool) for r in rows)
        assert {r["manufacturer"] for r in rows} == {True, False}
        for row in rows[:40]:
            (detail,) = read(http, id=row["id"]).json()["results"]
            for key in ("manufacturer", "eu_representative"):
                assert isinstance(detail[key], list) and bool(detail[key]) == row[key]
                assert all(set(entry) == {"name", "address", "email"} for entry in detail[key])
            assert {k: v for k, v in detail.items() if k not in ("manufacturer", "eu_representative")} == {
                k: v for k, v in row.items() if k not in ("manufacturer", "eu_representative")
            }


def test_set_field_crafts_any_value_at_any_path(sandbox: Sandbox) -> None:
    state = sandbox.state
    state.set_field("main", 100_005, "description", "Descriere din Word\x00")
    state.set_field("main", 100_005, "offer_details.notes[0]", "a\ud83db")
    state.set_field("main", 100_005, "general_stock", 2**70)
    state.set_field("main", 100_005, "characteristics[0].value", None)
    state.remove_field("main", 100_005, "brand")
    with sandbox.client() as http:
        page = read(http, itemsPerPage=10).content
        (by_id,) = read(http, id=100_005).json()["results"]
    assert b'"Descriere din Word\\u0000"' in page and b'"a\\ud83db"' in page and str(2**70).encode() in page
    row = next(r for r in state.truth("main") if r["id"] == 100_005)
    for offer in (row, by_id):
        assert offer["offer_details"]["notes"] == ["a\ud83db"] and offer["general_stock"] == 2**70
        assert offer["characteristics"][0]["value"] is None and "brand" not in offer
    with pytest.raises(ValueError, match="not in the main catalogue"):
        state.set_field("main", 1, "name", "x")
    with pytest.raises(ValueError, match="cannot read the path"):
        state.set_field("main", 100_005, "stock..value", 1)
    with pytest.raises(ValueError, match="has no item 9"):
        state.set_field("main", 100_005, "images[9].url", "x")


def test_set_field_over_the_control_api_takes_lone_surrogates(sandbox: Sandbox) -> None:
    body = b'{"id": 500001, "path": "name", "value": "Husa \\ud83d"}'
    with sandbox.control() as control, sandbox.client("fbe") as http:
        assert control.post("/fbe/set_field", content=body).status_code == 200
        assert read(http, id=500_001).json()["results"][0]["name"] == "Husa \ud83d"
        assert control.post("/fbe/remove_field", json={"id": 500_001, "path": "name"}).status_code == 200
        assert "name" not in read(http, id=500_001).json()["results"][0]
        assert control.post("/fbe/set_field", json={"id": 1, "path": "name", "value": 1}).status_code == 400


@pytest.mark.parametrize("field", ["sale_price", "stock", "name", "description", "status", "characteristics", "images"])
def test_every_mutable_field_really_changes(sandbox: Sandbox, field: str) -> None:
    before = {p["id"]: p for p in sandbox.state.truth("fbe")}
    changed = sandbox.state.mutate("fbe", 5, fields=[field])
    with sandbox.client("fbe") as http:
        after = {p["id"]: p for p in read_all(http)}
    assert sorted(i for i in before if before[i] != after[i]) == changed
    assert all(before[i][field] != after[i][field] for i in changed)
