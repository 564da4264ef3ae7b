"""Tokens, scopes and the one error shape, over HTTP."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from typing import Any

import httpx
from sqlalchemy import select

from magflow.api.auth import revoke_token
from magflow.db.engine import session_factory
from magflow.models import ApiToken

from .conftest import PREFIX, Api, assert_error


async def test_health_needs_no_token(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        response = await http.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_every_endpoint_refuses_a_missing_or_bad_token(api: Api) -> None:
    calls = [
        ("POST", "/sync"),
        ("GET", "/status"),
        ("GET", "/statistics"),
        ("GET", "/history"),
        ("GET", "/products"),
        ("GET", "/products/00000000-0000-0000-0000-000000000000"),
        ("PATCH", "/products/00000000-0000-0000-0000-000000000000"),
        ("GET", "/conflicts"),
        ("POST", "/conflicts/1/resolve"),
        ("POST", "/test-connection?account_type=main"),
        ("GET", "/sync/00000000-0000-0000-0000-000000000000"),
        ("POST", "/sync/00000000-0000-0000-0000-000000000000/cancel"),
    ]
    async with api.client(None) as http:
        for method, path in calls:
            missing = await http.request(method, path)
            body = assert_error(missing, 401, "missing_token")
            assert "Authorization: Bearer" in body["detail"]
            assert missing.headers["www-authenticate"] == "Bearer"
            wrong = await http.request(method, path, headers={"Authorization": "Bearer mgf_not-a-real-token"})
            assert_error(wrong, 401, "invalid_token")
            basic = await http.request(method, path, headers={"Authorization": "Basic dXNlcjpwYXNz"})
            assert_error(basic, 401, "invalid_token")


async def test_scopes_read_sync_admin(api: Api) -> None:
    missing_product = "/products/00000000-0000-0000-0000-000000000000"
    async with api.client("read") as http:
        assert (await http.get("/statistics")).status_code == 200
        body = assert_error(await http.post("/sync", json={"account_type": "main"}), 403, "insufficient_scope")
        assert "'sync'" in body["detail"]
        assert_error(await http.post("/sync/00000000-0000-0000-0000-000000000000/cancel"), 403)
        assert_error(await http.patch(missing_product, json={"name": "x"}), 403)
    async with api.client("sync") as http:
        assert_error(await http.post("/sync/00000000-0000-0000-0000-000000000000/cancel"), 404, "sync_not_found")
        body = assert_error(await http.patch(missing_product, json={"name": "x"}), 403, "insufficient_scope")
        assert "'admin'" in body["detail"]
        assert_error(await http.post("/conflicts/1/resolve", json={"resolution": "emag"}), 403)
    async with api.client("admin") as http:
        assert_error(await http.patch(missing_product, json={"name": "x"}), 404, "product_not_found")
        assert_error(await http.post("/conflicts/1/resolve", json={"resolution": "emag"}), 404, "conflict_not_found")


async def test_a_revoked_token_stops_working_at_once(api: Api) -> None:
    async with api.client("read") as http:
        assert (await http.get("/status")).status_code == 200
        async with session_factory(api.engine)() as session:
            assert await revoke_token(session, "test-read")
            await session.commit()
        assert_error(await http.get("/status"), 401, "invalid_token")


async def test_invalid_input_is_422_naming_the_field(api: Api) -> None:
    async with api.client("admin") as http:
        cases: list[tuple[httpx.Response, str]] = [
            (await http.get("/history?limit=0"), "limit"),
            (await http.get("/history?limit=101"), "limit"),
            (await http.get("/history?status=exploded"), "status"),
            (await http.get("/products?limit=500"), "limit"),
            (await http.get("/products?skip=-1"), "skip"),
            (await http.get("/products?account_type=amazon"), "account_type"),
            (await http.get("/products/not-a-uuid"), "product_id"),
            (await http.post("/test-connection?account_type=both"), "account_type"),
            (await http.post("/sync", json={"items_per_page": 101}), "items_per_page"),
            (await http.post("/sync", json={"mode": "sometimes"}), "mode"),
            (await http.post("/sync", json={"conflict_strategy": "coin_flip"}), "conflict_strategy"),
            (await http.post("/sync", json={"max_pages": 0}), "max_pages"),
            (await http.post("/sync", json={"acount_type": "main"}), "acount_type"),
            (await http.post("/sync", content=b"{not json"), "body"),
            (await http.post("/sync", json=["main"]), "body"),
            (await http.post("/sync", json={"mode": "selective"}), "body"),
            (
                await http.patch("/products/00000000-0000-0000-0000-000000000000", json={"sale_price": "abc"}),
                "sale_price",
            ),
            (await http.post("/conflicts/1/resolve", json={"resolution": "maybe"}), "resolution"),
        ]
    for response, field in cases:
        body = assert_error(response, 422, "invalid_request")
        assert body["detail"].startswith(f"{field}:") or field in body["detail"], body
        assert any(f["field"].startswith(field) for f in body["fields"]), body


async def test_unknown_paths_and_methods_use_the_error_shape(api: Api) -> None:
    async with api.client("admin") as http:
        assert_error(await http.get("/nothing-here"), 404, "not_found")
        response = await http.delete("/status")
        assert_error(response, 405, "method_not_allowed")
        assert "GET" in response.headers["allow"]


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from magflow.api.cli import token_app; token_app(sys.argv[1:])"
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


async def test_tokens_from_the_cli_are_shown_once_stored_hashed_and_revocable(api: Api, database_url: str) -> None:
    created = _cli(database_url, "create", "--name", "ops", "--scope", "sync")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("mgf_") and len(token) > 40
    async with session_factory(api.engine)() as session:
        row = (await session.scalars(select(ApiToken).where(ApiToken.name == "ops"))).one()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (row.prefix, row.name) and len(row.prefix) < len(token)

    async with httpx.AsyncClient(base_url=api.base_url + PREFIX) as http:
        headers = {"Authorization": f"Bearer {token}"}
        assert (await http.get("/status", headers=headers)).status_code == 200
        listed = _cli(database_url, "list")
        assert "ops" in listed.stdout and token not in listed.stdout
        duplicate = _cli(database_url, "create", "--name", "ops", "--scope", "read")
        assert duplicate.returncode != 0 and "already exists" in duplicate.stderr
        bad_scope = _cli(database_url, "create", "--name", "x", "--scope", "root")
        assert bad_scope.returncode != 0 and "scope" in bad_scope.stderr
        revoked = _cli(database_url, "revoke", "ops")
        assert revoked.returncode == 0, revoked.stderr
        assert_error(await http.get("/status", headers=headers), 401, "invalid_token")


async def test_local_reads_without_a_token_only_when_enabled(api: Api, sandbox: Any, start_api: Any) -> None:
    # The guide's troubleshooting step: curl -X GET .../history?status=failed, with no Authorization header.
    async with httpx.AsyncClient(base_url=api.base_url + PREFIX) as http:
        assert_error(await http.get("/history?status=failed"), 401, "missing_token")
    local = start_api(sandbox.base_url, magflow_api_allow_local_reads=True)
    async with httpx.AsyncClient(base_url=local.base_url + PREFIX) as http:
        response = await http.get("/history?status=failed")
        assert response.status_code == 200, response.text
        assert response.json() == {"items": [], "count": 0}
        assert_error(await http.post("/sync", json={"mode": "full"}), 401, "missing_token")
        assert_error(await http.post("/test-connection?account_type=main"), 401, "missing_token")
        bad = await http.get("/status", headers={"Authorization": "Bearer mgf_wrong"})
        assert_error(bad, 401, "invalid_token")
