"""GET /products (search, paging), GET/PATCH /products/{id}, and the manual strategy's conflict queue."""

from __future__ import annotations

from typing import Any

from magflow.text import fold

from .conftest import Api, assert_error


def test_search_folding_ignores_case_and_romanian_diacritics() -> None:
    assert fold("Set cuțite de bucătărie") == "set cutite de bucatarie"
    assert fold("ȘCOALĂ") == fold("scoala") == fold("Școală")
    assert fold("Lampă ÎÂ") == "lampa ia"


async def _full_sync(api: Api, **extra: Any) -> None:
    # A conflict strategy other than the default needs an admin token.
    async with api.client(
        "admin" if extra.get("conflict_strategy", "emag_priority") != "emag_priority" else "sync"
    ) as http:
        response = await http.post("/sync", json={"mode": "full", "account_type": "both", **extra})
        assert response.status_code == 200 and response.json()["status"] == "completed", response.text


async def test_list_and_search_products(api: Api, sandbox: Any) -> None:
    await _full_sync(api)
    main, fbe = sandbox.state.truth("main"), sandbox.state.truth("fbe")
    async with api.client("read") as http:
        page = (await http.get("/products", params={"skip": 0, "limit": 50})).json()
        assert page["total"] == len(main) + len(fbe) and len(page["items"]) == 50
        second = (await http.get("/products", params={"skip": 50, "limit": 50})).json()
        assert not {i["id"] for i in page["items"]} & {i["id"] for i in second["items"]}
        only_main = (await http.get("/products", params={"account_type": "main", "limit": 100})).json()
        assert only_main["total"] == len(main)

        sku = main[0]["part_number"]
        by_sku = (await http.get("/products", params={"search": sku.lower(), "account_type": "main"})).json()
        assert sku in {i["sku"] for i in by_sku["items"]}

        named = [p for p in main if "cuțite" in (p.get("name") or "")]
        assert named, "the sandbox catalogue has knives with diacritics"
        folded = (await http.get("/products", params={"search": "CUTITE", "account_type": "main"})).json()
        assert folded["total"] == len(named)
        assert all("cuțite" in i["name"] for i in folded["items"])
        assert (await http.get("/products", params={"search": "%"})).json()["total"] == 0


async def test_product_detail_patch_and_change_history(api: Api, sandbox: Any) -> None:
    await _full_sync(api)
    async with api.client("admin") as http:
        item = (await http.get("/products", params={"account_type": "main", "limit": 1})).json()["items"][0]
        detail = (await http.get(f"/products/{item['id']}")).json()
        assert detail["raw_emag_data"]["id"] == detail["emag_id"]
        assert [c["change_type"] for c in detail["changes"]] == ["created"]

        patched = await http.patch(
            f"/products/{item['id']}",
            json={"sale_price": 123.45, "name": "Școală nouă", "custom_fields": {"shelf": "A3", "margin": 0.2}},
        )
        assert patched.status_code == 200, patched.text
        body = patched.json()
        assert body["sale_price"] == "123.4500" and body["name"] == "Școală nouă"
        assert body["custom_fields"] == {"shelf": "A3", "margin": 0.2}
        assert set(body["local_edits"]) == {"sale_price", "name"}
        assert body["local_edits"]["name"]["edited_by"] == "test-admin"
        changes = {(c["change_type"], c["field"]) for c in body["changes"]}
        assert {("local_edit", "sale_price"), ("local_edit", "name"), ("custom_fields", "custom_fields")} <= changes

        found = (await http.get("/products", params={"search": "scoala"})).json()
        assert [i["id"] for i in found["items"]] == [item["id"]]

        removed = await http.patch(f"/products/{item['id']}", json={"custom_fields": {"shelf": None}})
        assert removed.json()["custom_fields"] == {"margin": 0.2}

        unchanged = await http.patch(f"/products/{item['id']}", json={})
        assert unchanged.status_code == 200 and unchanged.json()["custom_fields"] == {"margin": 0.2}
        body = assert_error(await http.patch(f"/products/{item['id']}", json={"sku": "X"}), 422)
        assert body["fields"][0]["field"] == "sku"
        body = assert_error(await http.patch(f"/products/{item['id']}", json={"status": 7}), 422)
        assert body["fields"][0]["field"] == "status"
        missing = "/products/00000000-0000-0000-0000-000000000000"
        assert_error(await http.get(missing), 404, "product_not_found")


async def test_manual_conflicts_listed_and_resolved(api: Api, sandbox: Any) -> None:
    await _full_sync(api, conflict_strategy="manual")
    changed = sandbox.state.mutate("main", 5, fields=("sale_price",))
    async with api.client("admin") as http:
        products = (await http.get("/products", params={"account_type": "main", "limit": 100, "skip": 0})).json()
        everything = products["items"]
        skip = 100
        while len(everything) < products["total"]:
            more = await http.get("/products", params={"account_type": "main", "limit": 100, "skip": skip})
            everything += more.json()["items"]
            skip += 100
        target = next(i for i in everything if i["emag_id"] == changed[0])
        edit = await http.patch(f"/products/{target['id']}", json={"sale_price": "1.23"})
        assert edit.status_code == 200

        synced = await http.post(
            "/sync",
            json={
                "account_type": "main",
                "mode": "incremental",
                "include_inactive": True,
                "conflict_strategy": "manual",
            },
        )
        assert synced.status_code == 200, synced.text
        assert synced.json()["data"]["conflicts"] == 1

        queue = (await http.get("/conflicts")).json()
        assert queue["count"] == 1
        conflict = queue["items"][0]
        assert conflict["product_id"] == target["id"] and conflict["field"] == "sale_price"
        assert conflict["status"] == "open" and conflict["local_value"] == "1.23"
        assert (await http.get("/conflicts", params={"account_type": "fbe"})).json()["count"] == 0
        detail = (await http.get(f"/products/{target['id']}")).json()
        assert detail["sync_status"] == "conflict" and len(detail["open_conflicts"]) == 1

    async with api.client("sync") as http:
        assert_error(await http.post(f"/conflicts/{conflict['id']}/resolve", json={"resolution": "local"}), 403)
    async with api.client("admin") as http:
        assert_error(await http.post(f"/conflicts/{conflict['id']}/resolve", json={"resolution": "value"}), 422)
        resolved = await http.post(f"/conflicts/{conflict['id']}/resolve", json={"resolution": "local"})
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["status"] == "resolved" and resolved.json()["resolved_by"] == "test-admin"
        again = await http.post(f"/conflicts/{conflict['id']}/resolve", json={"resolution": "emag"})
        assert_error(again, 409, "conflict_resolved")
        assert (await http.get("/conflicts")).json()["count"] == 0
        assert (await http.get("/conflicts", params={"status": "resolved"})).json()["count"] == 1
        detail = (await http.get(f"/products/{target['id']}")).json()
        assert detail["sync_status"] == "synced" and detail["sale_price"] == "1.2300"
        assert detail["changes"][0]["change_type"] == "conflict_resolved"


async def test_quarantined_and_cleaned_products_are_found_by_their_status(api: Api, sandbox: Any) -> None:
    ids = [p["id"] for p in sandbox.state.truth("main")]
    sandbox.state.set_field("main", ids[0], "currency", "RONXX")  # no column holds it: quarantined
    sandbox.state.set_field("main", ids[1], "description", "Word\x00paste")  # cleaned, stored
    await _full_sync(api)
    async with api.client("read") as http:
        failed = (await http.get("/products", params={"sync_status": "failed"})).json()
        assert [i["emag_id"] for i in failed["items"]] == [ids[0]]
        assert "currency" in failed["items"][0]["sync_issue"]
        page = (await http.get("/products", params={"account_type": "main", "limit": 100})).json()
        cleaned = next(i for i in page["items"] if i["emag_id"] == ids[1])
        assert cleaned["sync_status"] == "synced" and cleaned["sync_issue"].startswith("cleaned:")
        first_read = cleaned["last_synced_at"]
        await _full_sync(api)  # nothing changed: no row is rewritten, yet the product was read again
        again = (await http.get(f"/products/{cleaned['id']}")).json()
        assert again["last_synced_at"] > first_read and again["last_seen_at"] > first_read
        assert again["updated_at"] == cleaned["updated_at"]
        bad = await http.get("/products", params={"sync_status": "broken"})
        assert bad.status_code == 422
