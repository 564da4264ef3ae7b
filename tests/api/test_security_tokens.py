"""Issue 19, item 17: tokens can expire, failed attempts are throttled per address and logged, admin calls are
logged, and a revoked token's row stays when its name is used again."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.api.auth import TokenError, create_token, parse_duration, revoke_token
from magflow.db.engine import session_factory
from magflow.models import ApiToken

from .conftest import PREFIX, assert_error, make_tokens


def _token_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`magflow token ARGS`, the way an operator runs it (its log file in a temporary directory)."""
    with tempfile.TemporaryDirectory() as workdir:
        env = {**os.environ, "DATABASE_URL": database_url, "LOG_FILE": f"{workdir}/cli.log"}
        return subprocess.run(
            [sys.executable, "-m", "magflow", "token", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=workdir,
            timeout=60,
            check=False,
        )


async def test_a_token_created_with_an_expiry_stops_working_after_it(
    sandbox: Any, start_api: Any, clean_engine: AsyncEngine, database_url: str
) -> None:
    created = _token_cli(database_url, "create", "--name", "ci", "--scope", "read", "--expires-in", "30d")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert "expires in 30d" in created.stderr
    async with session_factory(clean_engine)() as session:
        row = (await session.scalars(select(ApiToken).where(ApiToken.name == "ci"))).one()
    assert row.expires_at is not None
    assert timedelta(days=29) < row.expires_at - datetime.now(UTC) <= timedelta(days=30)
    listed = _token_cli(database_url, "list")
    assert f"{row.expires_at:%Y-%m-%d}" in listed.stdout and token not in listed.stdout

    server = start_api(sandbox.base_url)
    async with httpx.AsyncClient(base_url=server.base_url + PREFIX, timeout=30) as http:
        headers = {"Authorization": f"Bearer {token}"}
        assert (await http.get("/status", headers=headers)).status_code == 200
        async with clean_engine.begin() as conn:  # thirty days later
            await conn.execute(
                update(ApiToken)
                .where(ApiToken.name == "ci")
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        body = assert_error(await http.get("/status", headers=headers), 401, "token_expired")
        assert "'ci' expired" in body["detail"] and "magflow token create" in body["detail"]

    refused = _token_cli(database_url, "create", "--name", "x", "--expires-in", "soon")
    assert refused.returncode == 2 and "--expires-in must be a positive duration" in refused.stderr, refused.stderr
    for bad in ("0d", "-5d", "99999w", "3.5d"):
        with pytest.raises(TokenError, match="--expires-in"):
            parse_duration(bad)
    assert parse_duration("12h") == timedelta(hours=12) and parse_duration("90") == timedelta(days=90)


async def test_a_revoked_tokens_row_stays_when_its_name_is_used_again(
    clean_engine: AsyncEngine, database_url: str
) -> None:
    async with session_factory(clean_engine)() as session:
        await create_token(session, "ops", "sync")
        assert await revoke_token(session, "ops")
        await create_token(session, "ops", "read")
        await session.commit()
        with pytest.raises(TokenError, match="already exists"):
            await create_token(session, "ops", "admin")
        await session.rollback()
        rows = (await session.scalars(select(ApiToken).where(ApiToken.name == "ops").order_by(ApiToken.id))).all()
    assert [(r.scope, r.revoked_at is not None) for r in rows] == [("sync", True), ("read", False)]
    listed = _token_cli(database_url, "list").stdout
    assert listed.count("ops ") == 2, listed


async def test_unknown_tokens_from_one_address_are_throttled(
    sandbox: Any, start_api: Any, clean_engine: AsyncEngine
) -> None:
    # Callers relayed by a proxy on this machine, which names each caller's address (trusted: it is loopback).
    tokens = await make_tokens(clean_engine)
    server = start_api(sandbox.base_url, magflow_api_auth_failures_per_minute=3)
    guesser = {"X-Forwarded-For": "203.0.113.7"}
    neighbour = {"X-Forwarded-For": "203.0.113.8"}
    async with httpx.AsyncClient(base_url=server.base_url + PREFIX, timeout=30) as http:
        assert (await http.get("/status", headers=guesser)).status_code == 401  # no token: not a guess
        for attempt in range(3):
            wrong = {**guesser, "Authorization": f"Bearer mgf_guess-{attempt}"}
            assert_error(await http.get("/status", headers=wrong), 401, "invalid_token")
        throttled = await http.get("/status", headers={**guesser, "Authorization": "Bearer mgf_guess-4"})
        assert_error(throttled, 429, "too_many_auth_failures")
        assert 1 <= int(throttled.headers["retry-after"]) <= 60
        # The whole address waits, a valid token too: a guesser cannot tell which of its tries was right.
        valid = await http.get("/status", headers={**guesser, "Authorization": f"Bearer {tokens['read']}"})
        assert_error(valid, 429, "too_many_auth_failures")
        patch = await http.patch(
            "/products/00000000-0000-0000-0000-000000000000",
            headers={**guesser, "Authorization": "Bearer mgf_guess-5"},
            json={"name": "x"},
        )
        assert_error(patch, 429, "too_many_auth_failures")
        # Another address, and the operator on this machine, are not held back by the guesser.
        assert (
            await http.get("/status", headers={**neighbour, "Authorization": f"Bearer {tokens['read']}"})
        ).status_code == 200
        for attempt in range(5):
            local_typo = {"Authorization": f"Bearer mgf_typo-{attempt}"}
            assert_error(await http.get("/status", headers=local_typo), 401, "invalid_token")
        assert (await http.get("/status", headers={"Authorization": f"Bearer {tokens['read']}"})).status_code == 200


async def test_refusals_and_admin_calls_are_in_the_log_file(
    sandbox: Any, start_api: Any, clean_engine: AsyncEngine, tmp_path: Path
) -> None:
    tokens = await make_tokens(clean_engine)
    log_file = tmp_path / "emag_sync.log"
    server = start_api(sandbox.base_url, log_file=log_file)
    missing_product = "/products/00000000-0000-0000-0000-000000000000"
    async with httpx.AsyncClient(base_url=server.base_url + PREFIX, timeout=30) as http:
        await http.get("/status")
        await http.get("/status", headers={"Authorization": "Bearer mgf_wrong-token-123456"})
        await http.patch(missing_product, headers={"Authorization": f"Bearer {tokens['read']}"}, json={"name": "x"})
        await http.patch(missing_product, headers={"Authorization": f"Bearer {tokens['admin']}"}, json={"name": "x"})
        await http.get("/status%0A2026-01-01T00:00:00Z ERROR magflow.sync forged account=main")
    lines = log_file.read_text().splitlines()
    refused = [line for line in lines if "api auth refused" in line]
    assert any(
        "status=401 reason=missing_token" in line and "path=/api/v1/emag/products/status" in line for line in refused
    )
    assert any("status=401 reason=invalid_token" in line and "client=127.0.0.1" in line for line in refused)
    assert any(
        "status=403 reason=insufficient_scope token=test-read" in line and "method=PATCH" in line for line in refused
    )
    calls = [line for line in lines if "api call" in line]
    assert any("token=test-admin scope=admin status=404" in line and "method=PATCH" in line for line in calls), calls
    # A path a caller chose stays on its own line, and no token is ever written.
    assert not any(line.startswith("2026-01-01T00:00:00Z ERROR") for line in lines)
    text = log_file.read_text()
    for secret in (*tokens.values(), "mgf_wrong-token-123456"):
        assert secret not in text
