"""What a token may make magflow spend at eMAG, and whom the audit names (issue 19, items 4, 10 and 11).

eMAG gives an account 3 requests/s for everything but orders, shared by its syncs: a connection check, a page size
or a list of filters chosen by a caller must not eat that budget, and a sync must say who started it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.db.engine import session_factory
from magflow.models import EmagAccountState

from .conftest import Api, assert_error


def requests_to(sandbox: Any, account: str) -> int:
    """Every request that reached the sandbox for this account since the test began."""
    return sum(sandbox.state.requests_per_second(account).values())


async def connection_state(engine: AsyncEngine, account: str) -> tuple[str | None, Any]:
    async with session_factory(engine)() as session:
        row = await session.scalar(select(EmagAccountState).where(EmagAccountState.account_type == account))
        return (row.last_connection_status, row.last_connection_checked_at) if row else (None, None)


# 4. A read token can burn the rate budget --------------------------------------------------------------------------


async def test_a_read_token_cannot_test_the_connection(api: Api, sandbox: Any) -> None:
    async with api.client("read") as http:
        body = assert_error(await http.post("/test-connection", params={"account_type": "main"}), 403)
    assert body["error"] == "insufficient_scope" and "'sync'" in body["detail"]
    assert requests_to(sandbox, "main") == 0


async def test_parallel_checks_of_one_account_cost_one_check_and_later_ones_are_answered_from_it(
    api: Api, sandbox: Any
) -> None:
    async with api.client("sync") as http:
        answers = await asyncio.gather(
            *(http.post("/test-connection", params={"account_type": "main"}) for _ in range(30))
        )
        assert {a.status_code for a in answers} == {200}
        assert {a.json()["status"] for a in answers} == {"ok"}
        # One check: the count and two one-offer pages, shared by every caller that arrived meanwhile.
        assert requests_to(sandbox, "main") == 3

        later = await http.post("/test-connection?account_type=main")
        body = later.json()
        assert body["connected"] is True and body["product_count"] == len(sandbox.state.truth("main"))
        assert "the verdict of a check" in body["message"] and "s ago" in body["message"]
        assert int(later.headers["Age"]) >= 0
        assert requests_to(sandbox, "main") == 3
        # The other account has its own verdict.
        assert (await http.post("/test-connection?account_type=fbe")).json()["status"] == "ok"
        assert requests_to(sandbox, "fbe") == 3


async def test_a_deep_check_is_reused_for_a_minute_and_answers_quick_checks_too(api: Api, sandbox: Any) -> None:
    async with api.client("sync") as http:
        first = await http.post("/test-connection", params={"account_type": "main", "deep": "true"})
        assert first.status_code == 200 and "Age" not in first.headers
        spent = requests_to(sandbox, "main")
        assert first.json()["deep"]["requests_used"] == spent

        again = await http.post("/test-connection", params={"account_type": "main", "deep": "true"})
        assert again.status_code == 200 and "Age" in again.headers
        assert again.json()["deep"]["checks"] == first.json()["deep"]["checks"]
        quick = (await http.post("/test-connection", params={"account_type": "main"})).json()
        assert quick["status"] == "ok" and "deep" not in quick
        assert requests_to(sandbox, "main") == spent


async def test_a_quick_verdict_does_not_answer_a_deep_check(api: Api, sandbox: Any) -> None:
    async with api.client("sync") as http:
        await http.post("/test-connection", params={"account_type": "main"})
        deep = await http.post("/test-connection", params={"account_type": "main", "deep": "true"})
    assert deep.status_code == 200 and deep.json()["deep"]["ok"] is True
    assert requests_to(sandbox, "main") == 3 + deep.json()["deep"]["requests_used"]


async def test_checks_yield_to_a_running_sync(api: Api, sandbox: Any) -> None:
    sandbox.state.faults.set_latency(800)  # a full sync of 3 pages then takes a few seconds
    async with api.client("sync") as http:
        accepted = await http.post("/sync", json={"account_type": "main", "mode": "full", "run_async": True})
        sync_id = accepted.json()["data"]["sync_id"]
        deadline = time.monotonic() + 30
        while True:
            run = (await http.get(f"/sync/{sync_id}")).json()
            if run["status"] == "running" and run["accounts"] and run["accounts"][0]["current_page"] >= 1:
                break
            assert run["status"] in ("queued", "running") and time.monotonic() < deadline, run["error_message"]
            await asyncio.sleep(0.05)

        checked = await http.post("/test-connection", params={"account_type": "main"})
        body = checked.json()
        assert checked.status_code == 200 and body["status"] == "ok" and body["connected"] is True
        assert sync_id in body["message"] and "not checked again while the sync runs" in body["message"]
        assert body["product_count"] == len(sandbox.state.truth("main")) and "Age" in checked.headers
        deep = await http.post("/test-connection", params={"account_type": "main", "deep": "true"})
        assert assert_error(deep, 409, "sync_running")["running_sync_id"] == sync_id
        # No check ran: the state readiness and alerts show was not overwritten.
        assert await connection_state(api.engine, "main") == (None, None)

        sandbox.state.faults.set_latency(0)
        assert (await api.wait_finished(sync_id))["status"] == "completed"


async def test_the_guides_call_with_a_token_still_checks(api: Api, sandbox: Any) -> None:
    async with httpx.AsyncClient(base_url=api.base_url, timeout=60) as http:
        answer = await http.post(
            "/api/v1/emag/products/test-connection?account_type=main",
            headers={"Authorization": f"Bearer {api.tokens['admin']}"},
        )
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "ok" and "Age" not in answer.headers
    assert set(body) == {"account_type", "status", "connected", "message", "product_count", "latency_ms"}
    assert (await connection_state(api.engine, "main"))[0] == "ok"


# 10. A sync token can plan thousands of eMAG calls -----------------------------------------------------------------


async def test_one_sync_names_at_most_200_offers(api: Api, sandbox: Any) -> None:
    ids = [p["id"] for p in sandbox.state.truth("main")]
    async with api.client("sync") as http:
        one_list = await http.post("/sync", json={"account_type": "main", "mode": "selective", "ids": ids[:201]})
        body = assert_error(one_list, 422)
        assert body["fields"][0]["field"] == "ids" and "200" in body["detail"]

        skus = [f"SKU-{n}" for n in range(60)]
        together = {"account_type": "main", "mode": "selective", "ids": ids[:150], "skus": skus}
        body = assert_error(await http.post("/sync", json=together), 422)
        assert "210 offers" in body["detail"] and "at most 200" in body["detail"]
        assert requests_to(sandbox, "main") == 0  # refused before a single eMAG call

        at_limit = {"account_type": "main", "mode": "selective", "ids": ids[:200], "run_async": True}
        within = await http.post("/sync", json=at_limit)
        assert within.status_code == 202, within.text
        cancelled = await http.post(f"/sync/{within.json()['data']['sync_id']}/cancel")
        assert cancelled.status_code == 202


async def test_a_scan_reads_100_per_page_whatever_page_size_it_asks_for(api: Api, sandbox: Any) -> None:
    total = len(sandbox.state.truth("main"))
    async with api.client("sync") as http:
        full = await http.post("/sync", json={"account_type": "main", "mode": "full", "items_per_page": 1})
        body = full.json()
        assert full.status_code == 200 and body["status"] == "completed", body
        assert body["data"]["total_processed"] == total
        assert body["data"]["notes"] == [
            "items_per_page 1 was ignored: a full sync reads 100 offers per page, eMAG's maximum and the fewest "
            "calls from the account's rate budget (only a selective sync of ids, skus or part_number_keys keeps "
            "its own page size)"
        ]
        # 3 pages and a few counts, not 300 pages.
        assert requests_to(sandbox, "main") < 10
        run = (await http.get(f"/sync/{body['data']['sync_id']}")).json()
        assert run["parameters"]["items_per_page"] == 100

        # The guide's troubleshooting step ("retry with smaller batch") still works, and says what it did.
        smaller = await http.post("/sync", json={"mode": "incremental", "max_pages": 2, "items_per_page": 50})
        assert smaller.status_code == 200 and smaller.json()["status"] == "completed"
        assert "items_per_page 50 was ignored" in smaller.json()["data"]["notes"][0]
        assert "max_pages limits how much it reads" in smaller.json()["data"]["notes"][0]

        queued = await http.post(
            "/sync", json={"account_type": "fbe", "mode": "full", "items_per_page": 5, "run_async": True}
        )
        assert queued.status_code == 202 and "items_per_page 5 was ignored" in queued.json()["data"]["notes"][0]
        assert (await api.wait_finished(queued.json()["data"]["sync_id"]))["pages_processed"] <= 4

        guide = await http.post("/sync", json={"account_type": "main", "mode": "full", "items_per_page": 100})
        assert guide.json()["data"]["notes"] == []
        one = [sandbox.state.truth("main")[0]["id"]]
        named = await http.post(
            "/sync", json={"account_type": "main", "mode": "selective", "ids": one, "items_per_page": 10}
        )
        assert named.status_code == 200 and named.json()["data"]["notes"] == []


# 11. A sync token can override an admin's local edits ---------------------------------------------------------------


async def test_only_an_admin_chooses_how_conflicts_with_local_edits_are_settled(api: Api, sandbox: Any) -> None:
    async with api.client("sync") as http:
        for strategy in ("local_priority", "newest_wins", "manual"):
            refused = await http.post("/sync", json={"account_type": "main", "conflict_strategy": strategy})
            body = assert_error(refused, 403, "insufficient_scope")
            assert strategy in body["detail"] and "admin" in body["detail"]
        assert (await http.get("/history")).json()["count"] == 0
        assert requests_to(sandbox, "main") == 0
        default = await http.post(
            "/sync", json={"account_type": "main", "mode": "full", "conflict_strategy": "emag_priority"}
        )
        assert default.status_code == 200 and default.json()["status"] == "completed"
    async with api.client("admin") as http:
        manual = await http.post("/sync", json={"account_type": "main", "conflict_strategy": "manual"})
        assert manual.status_code == 200 and manual.json()["status"] == "completed"


async def test_the_audit_names_the_token_that_started_the_sync(api: Api, sandbox: Any) -> None:
    async with api.client("admin") as http:
        assert (await http.post("/sync", json={"account_type": "main", "mode": "full"})).status_code == 200
        products = await _all_products(http)
        gone = sandbox.state.delete_products("main", 1)
        target = next(p for p in products if p["emag_id"] not in gone)
        edit = await http.patch(f"/products/{target['id']}", json={"sale_price": "1.23"})
        assert edit.status_code == 200
    sandbox.state.set_field("main", target["emag_id"], "sale_price", 777.5)

    async with api.client("sync") as http:
        synced = await http.post("/sync", json={"account_type": "main", "mode": "full"})
        assert synced.status_code == 200 and synced.json()["status"] == "completed", synced.text
    async with api.client("admin") as http:
        changes = (await http.get(f"/products/{target['id']}")).json()["changes"]
        actors = {(c["change_type"], c["field"]): (c["source"], c["actor"]) for c in changes}
        assert actors[("created", None)] == ("emag", "api:test-admin")
        assert actors[("local_edit", "sale_price")][1] == "test-admin"
        # The admin's price was overwritten by eMAG's (emag_priority): the row says which token did it.
        assert actors[("conflict_resolved", "sale_price")] == ("conflict_resolution:emag_priority", "api:test-sync")
        missing = next(p for p in products if p["emag_id"] == gone[0])
        detail = (await http.get(f"/products/{missing['id']}")).json()
        assert (detail["changes"][0]["change_type"], detail["changes"][0]["actor"]) == ("missing", "api:test-sync")
    assert not any(c["actor"] == "sync" for c in changes)


async def _all_products(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = (await http.get("/products", params={"account_type": "main", "limit": 100, "skip": len(items)})).json()
        items += page["items"]
        if len(items) >= page["total"] or not page["items"]:
            return items
