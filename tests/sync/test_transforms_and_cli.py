"""The transformation hook, and the operator commands (status, history, resume) against a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.db.engine import session_factory
from magflow.models import EmagSyncLog
from magflow.sync.transforms import TransformHookError, load_transform
from magflow.testing.sync import stored


async def test_the_hook_adds_computed_fields_from_the_accounts_vat_rates(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    # The account's rates as vat/read serves them (Romania since August 2025: 21 % and 11 %).
    vat = {int(r["vat_id"]): Decimal(str(r["vat_rate"])) for r in sandbox.state.vat_rates()}
    hook = load_transform("magflow.sync.transforms:price_with_vat")
    result = await run_sync(account="main", mode="full", service={"transform": hook})
    assert result["status"] == "completed"
    rows = (await stored(clean_engine, "main")).values()
    priced = [r for r in rows if r.sale_price is not None and r.vat_id in vat]
    assert priced
    for row in priced:
        assert row.sale_price is not None and row.vat_id is not None
        expected = (row.sale_price * (1 + vat[row.vat_id])).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        assert Decimal(row.computed_fields["sale_price_with_vat"]) == expected


def test_a_hook_that_cannot_be_loaded_says_how_to_name_it() -> None:
    with pytest.raises(TransformHookError, match=r"give it as package\.module:function"):
        load_transform("magflow.sync.transforms:no_such_function")


def _magflow(
    args: list[str], database_url: str, cwd: Path, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAG_", "REDIS_URL"))}
    env.update(DATABASE_URL=database_url, COLUMNS="200", **(extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "magflow", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


async def test_resume_status_and_history_commands(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    sandbox.state.faults.inject("500", count=50, page=3)
    broken = await run_sync(account="main", mode="full", strategy="manual", config={"max_attempts": 2})
    assert broken["status"] == "partial"
    sandbox.state.faults.clear()

    history = _magflow(["history", "--status", "partial"], database_url, tmp_path)
    assert history.returncode == 0, history.stderr
    assert broken["sync_id"][:8] in history.stdout and "full_sync" in history.stdout

    # `magflow resume` reaches eMAG with the account's credentials: here, the sandbox's.
    env_accounts = {
        f"EMAG_{a.upper()}_{k}": v
        for a, (user, password) in sandbox.accounts.items()
        for k, v in (("USERNAME", user), ("PASSWORD", password), ("BASE_URL", sandbox.base_url))
    }
    resumed = _magflow(["resume"], database_url, tmp_path, env_accounts)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming the full sync of main from page 3" in resumed.stdout
    assert "completed" in resumed.stdout
    truth = {p["id"] for p in sandbox.state.truth("main")}
    assert set(await stored(clean_engine, "main")) == truth
    async with session_factory(clean_engine)() as session:
        latest = (await session.scalars(select(EmagSyncLog).order_by(EmagSyncLog.started_at.desc()))).first()
    assert latest is not None and latest.triggered_by == "cli:resume"
    assert latest.parameters["conflict_strategy"] == "manual"  # the interrupted run's strategy, kept

    status = _magflow(["status"], database_url, tmp_path)
    assert status.returncode == 0 and "no product sync is running" in status.stdout
    again = _magflow(["resume"], database_url, tmp_path, env_accounts)
    assert "nothing to resume" in again.stdout


def test_without_credentials_a_real_database_is_not_filled_with_sandbox_data(database_url: str, tmp_path: Path) -> None:
    refused = _magflow(["sync", "--account", "both", "--mode", "full"], database_url, tmp_path)
    assert refused.returncode == 2
    assert "no eMAG credentials are set" in refused.stdout and "--sandbox" in refused.stdout
    resume = _magflow(["resume"], database_url, tmp_path)
    assert "nothing to resume" in resume.stdout or resume.returncode == 2
