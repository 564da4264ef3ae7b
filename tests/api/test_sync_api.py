"""POST /sync, async runs, live /status, cancelling, 409, statistics, history and test-connection over HTTP."""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
import time
from typing import Any

import httpx

from .conftest import PREFIX, Api, assert_error

GUIDE_DATA_KEYS = {"total_processed", "created", "updated", "unchanged", "failed", "errors"}


def curl(command: str, base_url: str, token: str) -> tuple[int, Any]:
    """Run a curl command from the user's guide as written, against the test server and a real token."""
    command = command.replace("\\\n", " ").split("| jq")[0]
    command = command.replace("http://localhost:8000", base_url).replace("YOUR_TOKEN", token)
    args = shlex.split(command)
    assert args[0] == "curl"
    done = subprocess.run(
        [*args, "-s", "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=120, check=True
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body) if body else None


async def _wait_idle(api: Api) -> None:
    async with api.client("read") as http:
        for _ in range(600):
            if not (await http.get("/status")).json()["is_running"]:
                return
            await asyncio.sleep(0.1)
    raise AssertionError("a sync is still running")


async def test_the_guides_curl_calls_work_as_written(api: Api, sandbox: Any) -> None:
    token = api.tokens["admin"]
    run = lambda command: curl(command, api.base_url, token)  # noqa: E731
    main_total = len(sandbox.state.truth("main"))

    status, body = run("""curl -X POST http://localhost:8000/api/v1/emag/products/sync \\
  -H "Authorization: Bearer YOUR_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "account_type": "main",
    "mode": "full",
    "conflict_strategy": "emag_priority"
  }'""")
    assert status == 200, body
    assert body["status"] == "completed"
    assert body["message"] == "Product synchronization completed successfully"
    assert set(body["data"]) >= GUIDE_DATA_KEYS
    assert body["data"]["created"] == body["data"]["total_processed"] == main_total
    assert body["data"]["errors"] == []

    status, body = run("""curl -X POST http://localhost:8000/api/v1/emag/products/sync \\
  -H "Authorization: Bearer YOUR_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "account_type": "both",
    "mode": "incremental",
    "max_pages": 10,
    "conflict_strategy": "emag_priority"
  }'""")
    assert status == 200 and body["status"] == "completed", body

    # Without Content-Type (curl then says application/x-www-form-urlencoded): still read as JSON.
    status, body = run("""curl -X POST http://localhost:8000/api/v1/emag/products/sync \\
  -H "Authorization: Bearer YOUR_TOKEN" \\
  -d '{"mode": "full", "account_type": "both"}'""")
    assert status == 200 and body["status"] == "completed", body
    assert body["data"]["total_processed"] == main_total + len(sandbox.state.truth("fbe"))

    for command in (
        """curl -X POST http://localhost:8000/api/v1/emag/products/sync \\
  -H "Authorization: Bearer YOUR_TOKEN" \\
  -d '{"mode": "incremental", "max_pages": 5}'""",
        """curl -X POST http://localhost:8000/api/v1/emag/products/sync \\
  -H "Authorization: Bearer YOUR_TOKEN" \\
  -d '{"mode": "incremental", "max_pages": 2, "items_per_page": 50}'""",
    ):
        status, body = run(command)
        assert status == 200 and body["status"] == "completed", body

    status, body = run("""curl -X POST http://localhost:8000/api/v1/emag/products/sync \\
  -H "Authorization: Bearer YOUR_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "account_type": "both",
    "mode": "incremental",
    "run_async": true
  }'""")
    assert status == 202, body
    await api.wait_finished(body["data"]["sync_id"])
    status, body = run("""curl -X POST http://localhost:8000/api/v1/emag/products/sync \\
  -H "Authorization: Bearer YOUR_TOKEN" \\
  -d '{"mode": "full", "account_type": "both", "run_async": true}'""")
    assert status == 202, body
    finished = await api.wait_finished(body["data"]["sync_id"])
    assert finished["status"] == "completed"

    status, body = run("""curl -X GET http://localhost:8000/api/v1/emag/products/status \\
  -H "Authorization: Bearer YOUR_TOKEN\"""")
    assert status == 200 and body["is_running"] is False and len(body["recent_syncs"]) == 5
    status, body = run("""curl -s http://localhost:8000/api/v1/emag/products/status \\
  -H "Authorization: Bearer YOUR_TOKEN" | jq""")
    assert status == 200 and "current_sync" in body
    status, body = run("""curl -X GET http://localhost:8000/api/v1/emag/products/statistics \\
  -H "Authorization: Bearer YOUR_TOKEN\"""")
    assert status == 200 and body["products_by_account"]["main"] == main_total
    status, body = run("""curl -X GET "http://localhost:8000/api/v1/emag/products/history?limit=20" \\
  -H "Authorization: Bearer YOUR_TOKEN\"""")
    assert status == 200 and body["count"] == 7
    status, body = run("""curl -X GET http://localhost:8000/api/v1/emag/products/history?limit=10 \\
  -H "Authorization: Bearer YOUR_TOKEN" | jq""")
    assert status == 200 and body["count"] == 7
    status, body = run("""curl -X GET "http://localhost:8000/api/v1/emag/products/history?status=failed" \\
  -H "Authorization: Bearer YOUR_TOKEN" | jq""")
    assert status == 200 and body["items"] == []
    status, body = run("""curl -X GET "http://localhost:8000/api/v1/emag/products/products?skip=0&limit=50" \\
  -H "Authorization: Bearer YOUR_TOKEN\"""")
    assert status == 200 and len(body["items"]) == 50
    status, body = run(
        """curl -X GET "http://localhost:8000/api/v1/emag/products/products?search=laptop&account_type=main" \\
  -H "Authorization: Bearer YOUR_TOKEN\""""
    )
    assert status == 200 and all(i["account_type"] == "main" for i in body["items"])
    status, body = run("""curl -X POST http://localhost:8000/api/v1/emag/products/test-connection?account_type=main \\
  -H "Authorization: Bearer YOUR_TOKEN\"""")
    assert status == 200 and body["status"] == "ok" and body["product_count"] == main_total
    # Troubleshooting step 5 sends no token: refused unless MAGFLOW_API_ALLOW_LOCAL_READS=true (own test).
    status, body = run("curl -X GET http://localhost:8000/api/v1/emag/products/history?status=failed")
    assert status == 401 and body["error"] == "missing_token"


async def test_live_status_while_an_async_sync_runs(api: Api, sandbox: Any) -> None:
    sandbox.state.reset(products_per_account=2000)  # scans read 100 per page: 20 pages, a few seconds
    sandbox.state.faults.set_latency(300)
    async with api.client("sync") as http:
        accepted = await http.post("/sync", json={"account_type": "main", "mode": "full", "run_async": True})
        assert accepted.status_code == 202, accepted.text
        sync_id = accepted.json()["data"]["sync_id"]
        assert accepted.json()["data"]["dispatched_to"] == "server"

        seen: list[int] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = (await http.get("/status")).json()
            if not status["is_running"]:
                break
            current = status["current_sync"]
            assert current["id"] == sync_id and current["account_type"] == "main"
            assert current["operation"] == "full_sync"
            assert 0 <= current["percentage"] <= 100
            if current["status"] == "running" and current["processed_items"]:
                assert current["total_items"] == len(sandbox.state.truth("main"))
                assert current["estimated_completion_at"] is not None
                seen.append(current["processed_items"])
            await asyncio.sleep(0.15)
        assert len(set(seen)) >= 3, seen  # progress grew while the sync ran
        assert seen == sorted(seen)
        final = (await http.get("/status")).json()
        assert final["is_running"] is False and final["current_sync"] is None
        assert final["recent_syncs"][0]["id"] == sync_id
        assert final["recent_syncs"][0]["status"] == "completed"
        assert final["recent_syncs"][0]["processed_items"] == len(sandbox.state.truth("main"))


async def test_a_second_sync_of_a_busy_account_is_409_naming_the_running_one(api: Api, sandbox: Any) -> None:
    sandbox.state.faults.set_latency(100)
    async with api.client("sync") as http:
        accepted = await http.post(
            "/sync", json={"account_type": "main", "mode": "full", "items_per_page": 20, "run_async": True}
        )
        sync_id = accepted.json()["data"]["sync_id"]
        for account in ("main", "both"):
            clash = await http.post("/sync", json={"account_type": account})
            body = assert_error(clash, 409, "sync_already_running")
            assert sync_id in body["detail"] and body["running_sync_id"] == sync_id
        sandbox.state.faults.set_latency(0)
        assert (await api.wait_finished(sync_id))["status"] == "completed"
        # The refused requests left nothing queued behind.
        history = (await http.get("/history")).json()
        assert [r["id"] for r in history["items"]] == [sync_id]


async def test_cancelling_a_running_sync(api: Api, sandbox: Any) -> None:
    sandbox.state.reset(products_per_account=2000)  # scans read 100 per page: 20 pages to cancel in
    sandbox.state.faults.set_latency(300)
    async with api.client("sync") as http:
        accepted = await http.post("/sync", json={"account_type": "main", "mode": "full", "run_async": True})
        sync_id = accepted.json()["data"]["sync_id"]
        for _ in range(200):
            run = (await http.get(f"/sync/{sync_id}")).json()
            if run["processed_items"] > 0:
                break
            await asyncio.sleep(0.05)
        cancel = await http.post(f"/sync/{sync_id}/cancel")
        assert cancel.status_code == 202 and cancel.json()["status"] == "cancelling", cancel.text
        run = await api.wait_finished(sync_id)
        assert run["status"] == "cancelled"
        assert 0 < run["processed_items"] < len(sandbox.state.truth("main"))
        assert run["accounts"][0]["status"] == "cancelled"
        assert_error(await http.post(f"/sync/{sync_id}/cancel"), 409, "sync_finished")


async def test_sync_errors_and_numbers(api: Api, sandbox: Any) -> None:
    async with api.client("sync") as http:
        response = await http.post("/sync", json={"account_type": "fbe", "mode": "full"})
        assert response.status_code == 200
        data = response.json()["data"]
        assert data["created"] == len(sandbox.state.truth("fbe"))
        assert set(data["accounts"]) == {"fbe"}

        selective = await http.post(
            "/sync",
            json={"account_type": "fbe", "mode": "selective", "skus": [sandbox.state.truth("fbe")[0]["part_number"]]},
        )
        assert selective.status_code == 200, selective.text
        assert selective.json()["data"]["total_processed"] == 1

        stats = (await http.get("/statistics")).json()
        assert stats["products_by_account"] == {"main": 0, "fbe": len(sandbox.state.truth("fbe"))}
        assert stats["total_products"] == len(sandbox.state.truth("fbe"))
        active = sum(1 for p in sandbox.state.truth("fbe") if p.get("status") == 1)
        assert stats["by_account"]["fbe"]["active"] == active
        assert stats["by_account"]["fbe"]["synced"] == len(sandbox.state.truth("fbe"))

        sandbox.state.set_ip_whitelisted(False)
        failed = await http.post("/sync", json={"account_type": "main", "mode": "incremental"})
        assert failed.status_code == 200 and failed.json()["status"] == "failed", failed.text
        assert failed.json()["data"]["error_message"]
        history = (await http.get("/history", params={"status": "failed"})).json()
        assert history["count"] == 1 and history["items"][0]["account_type"] == "main"
        assert (await http.get("/history", params={"account_type": "fbe"})).json()["count"] == 2
        assert (await http.get("/history", params={"limit": 1})).json()["count"] == 1


async def test_test_connection_gives_the_verdict_never_a_secret(api: Api, sandbox: Any, start_api: Any) -> None:
    async with api.client("sync") as http:
        ok = (await http.post("/test-connection", params={"account_type": "fbe"})).json()
        assert ok["status"] == "ok" and ok["connected"] is True
        assert ok["product_count"] == len(sandbox.state.truth("fbe"))
        sandbox.state.set_ip_whitelisted(False)
        refused = await http.post("/test-connection", params={"account_type": "main"})
        assert refused.status_code == 200
        verdict = refused.json()
        assert verdict["status"] == "ip_not_whitelisted" and verdict["connected"] is False
        for _, password in sandbox.accounts.values():
            assert password not in refused.text

    bare = start_api(None)  # no credentials at all
    async with httpx.AsyncClient(
        base_url=bare.base_url + PREFIX, headers={"Authorization": f"Bearer {api.tokens['admin']}"}
    ) as http:
        body = assert_error(await http.post("/test-connection?account_type=fbe"), 409, "account_not_configured")
        assert "EMAG_FBE_USERNAME" in body["detail"]
        assert_error(await http.post("/sync", json={"account_type": "both"}), 409, "account_not_configured")
        assert (await http.get("/history")).json()["count"] == 0
