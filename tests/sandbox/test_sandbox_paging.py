from __future__ import annotations

import pytest

from magflow.testing.sandbox import Sandbox, read, read_all


@pytest.mark.parametrize("per_page", [1, 7, 33, 100])
@pytest.mark.parametrize("account", ["main", "fbe"])
def test_paging_with_any_page_size_covers_the_catalogue_exactly_once(
    sandbox: Sandbox, account: str, per_page: int
) -> None:
    with sandbox.client(account) as http:
        rows = read_all(http, per_page=per_page)
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == 300
    assert rows == sandbox.state.truth(account)


def test_count_answers_strings_like_emag(sandbox: Sandbox) -> None:
    with sandbox.client() as http:
        body = read(http, "product_offer/count", itemsPerPage=33).json()
    assert body == {
        "isError": False,
        "messages": [],
        "results": {"noOfItems": "300", "noOfPages": "10", "itemsPerPage": "33"},
        "errors": [],
    }


def test_more_than_100_items_per_page_silently_serves_100_or_is_refused_when_paging_overflow_is_error(
    sandbox: Sandbox,
) -> None:
    with sandbox.client() as http:
        capped = read(http, itemsPerPage=250)
        count = read(http, "product_offer/count", itemsPerPage=250).json()["results"]
        sandbox.state.set_quirks(paging_overflow="error", error_style="http400")
        refused = read(http, itemsPerPage=101)
    assert capped.status_code == 200 and len(capped.json()["results"]) == 100
    assert count == {"noOfItems": "300", "noOfPages": "3", "itemsPerPage": "100"}
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "itemsPerPage"


def test_accounts_share_skus_under_different_offer_ids(sandbox: Sandbox) -> None:
    main = {p["part_number"]: p["id"] for p in sandbox.state.truth("main")}
    fbe = {p["part_number"]: p["id"] for p in sandbox.state.truth("fbe")}
    shared = main.keys() & fbe.keys()
    assert len(shared) == 90  # 30 % of FBE's 300
    assert all(main[sku] != fbe[sku] for sku in shared)


def test_a_deletion_during_a_scan_shifts_later_pages_like_offset_paging(sandbox: Sandbox) -> None:
    with sandbox.client() as http:
        first = read(http, currentPage=1, itemsPerPage=100).json()["results"]
        deleted = sandbox.state.delete_products("main", 5)
        second = read(http, currentPage=2, itemsPerPage=100).json()["results"]
    after_delete = [p["id"] for p in sandbox.state.truth("main")]
    seen = {p["id"] for p in first + second} - set(deleted)
    expected = set(after_delete[:200])
    assert any(i < first[-1]["id"] for i in deleted), "the seed deletes on page 1"
    assert expected - seen, "rows that moved onto page 1 are skipped by a scan in progress"


def test_the_same_seed_gives_the_same_catalogue(make_sandbox: object, sandbox: Sandbox) -> None:
    from magflow.sandbox import SandboxState

    again = SandboxState(products_per_account=300, seed=1)
    other = SandboxState(products_per_account=300, seed=2)
    assert again.truth("fbe") == sandbox.state.truth("fbe")
    assert other.truth("fbe") != sandbox.state.truth("fbe")
