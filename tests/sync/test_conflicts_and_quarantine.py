"""Local edits against eMAG changes under each strategy, quarantined products, selective syncs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.db.engine import session_factory
from magflow.models import EmagProductConflict
from magflow.sync import ConflictResolutionStrategy
from magflow.sync.conflicts import resolve
from magflow.sync.local_edits import apply_local_edit, resolve_conflict
from magflow.testing.sync import stored

LOCAL_PRICE = Decimal("12345.6700")


async def _edit(engine: AsyncEngine, product_id: Any, **changes: Any) -> None:
    async with session_factory(engine)() as session:
        await apply_local_edit(session, product_id, changes, {"supplier": "Furnizor SRL"}, actor="ops")
        await session.commit()


async def _setup(sandbox: Any, run_sync: Any, engine: AsyncEngine) -> dict[str, Any]:
    await run_sync(account="main", mode="full")
    both, emag_only = sandbox.state.mutate("main", 2, fields=("sale_price",))
    other = next(i for i in sandbox.state.mutate("main", 3, fields=("name",)) if i not in (both, emag_only))
    rows = await stored(engine, "main")
    local_only = next(i for i in rows if i not in (both, emag_only, other))
    for emag_id in (both, local_only, other):
        await _edit(engine, rows[emag_id].id, sale_price=str(LOCAL_PRICE))
    truth = {p["id"]: p for p in sandbox.state.truth("main")}
    return {
        "both": both,
        "emag_only": emag_only,
        "local_only": local_only,
        "other_field": other,
        "truth": truth,
        "base": {i: rows[i].sale_price for i in rows},
    }


@pytest.mark.parametrize("strategy", [s.value for s in ConflictResolutionStrategy])
async def test_each_strategy_with_one_sided_and_two_sided_edits(
    strategy: str, sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    case = await _setup(sandbox, run_sync, clean_engine)
    if strategy == "newest_wins":
        # Date the edit before the full sync's read: eMAG's change (seen after that read) is then the newer one.
        async with clean_engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE emag_products_v2 SET local_edits = jsonb_set(local_edits, '{sale_price,edited_at}', "
                    "'\"2000-01-01T00:00:00+00:00\"') WHERE local_edits ? 'sale_price'"
                )
            )
    result = await run_sync(account="main", mode="incremental", include_inactive=True, strategy=strategy)
    assert result["status"] == "completed", result["error_message"]
    rows = await stored(clean_engine, "main")
    truth = case["truth"]
    emag_price = Decimal(str(truth[case["both"]]["sale_price"]))

    # One side only: that side's value, whatever the strategy.
    assert rows[case["local_only"]].sale_price == LOCAL_PRICE
    assert rows[case["emag_only"]].sale_price == Decimal(str(truth[case["emag_only"]]["sale_price"]))
    assert rows[case["other_field"]].sale_price == LOCAL_PRICE
    assert rows[case["other_field"]].name == truth[case["other_field"]]["name"]
    # Both sides: the strategy decides.
    both = rows[case["both"]]
    expected = {
        "emag_priority": emag_price,
        "local_priority": LOCAL_PRICE,
        "newest_wins": emag_price,
        "manual": LOCAL_PRICE,
    }[strategy]
    assert both.sale_price == expected
    assert both.raw_emag_data == truth[case["both"]]
    assert both.custom_fields == {"supplier": "Furnizor SRL"}

    async with session_factory(clean_engine)() as session:
        conflicts = (await session.scalars(select(EmagProductConflict))).all()
    if strategy == "manual":
        assert len(conflicts) == 1
        conflict = conflicts[0]
        assert conflict.emag_id == case["both"] and conflict.field == "sale_price"
        assert Decimal(conflict.local_value) == LOCAL_PRICE
        assert Decimal(conflict.emag_value) == emag_price
        assert Decimal(conflict.base_value) == case["base"][case["both"]]
        assert both.sync_status == "conflict"
        # A further sync does not pile up duplicates; resolving takes eMAG's value.
        sandbox.state.mutate("main", 1, fields=("name",))
        await run_sync(account="main", mode="incremental", include_inactive=True, strategy=strategy)
        async with session_factory(clean_engine)() as session:
            assert len((await session.scalars(select(EmagProductConflict))).all()) == 1
            await resolve_conflict(session, conflict.id, "emag", None, actor="ops")
            await session.commit()
        after = (await stored(clean_engine, "main"))[case["both"]]
        assert after.sale_price == emag_price and after.sync_status == "synced"
        assert "sale_price" not in after.local_edits
    else:
        assert conflicts == []


def test_newest_wins_keeps_a_local_edit_made_after_the_emag_change_was_observed() -> None:
    observed = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    edit = {"base": "10.0000", "edited_at": (observed + timedelta(minutes=5)).isoformat(), "edited_by": "ops"}
    res = resolve(
        {"sale_price": Decimal("11")},
        {"sale_price": Decimal("9")},
        {"sale_price": edit},
        ConflictResolutionStrategy.NEWEST_WINS,
        observed,
    )
    assert res.keep_local == {"sale_price": Decimal("9")}
    older = {**edit, "edited_at": (observed - timedelta(minutes=5)).isoformat()}
    res = resolve(
        {"sale_price": Decimal("11")},
        {"sale_price": Decimal("9")},
        {"sale_price": older},
        ConflictResolutionStrategy.NEWEST_WINS,
        observed,
    )
    assert res.keep_local == {}


async def test_a_corrupt_product_is_quarantined_while_its_page_lands(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    sandbox.state.faults.inject("corrupt_product", count=1, page=2)
    result = await run_sync(account="main", mode="full", items_per_page=50)
    assert result["failed"] == 1
    assert result["status"] == "completed"
    assert len(result["errors"]) == 1 and "malformed product" in result["errors"][0]["reason"]
    truth = sandbox.state.truth("main")
    rows = await stored(clean_engine, "main")
    # The quarantined offer has a row that says why, holding only its payload; its 49 neighbours landed.
    bad_id = result["errors"][0]["emag_id"]
    assert len(rows) == len(truth)
    assert rows[bad_id].sync_status == "failed" and "sale_price" in (rows[bad_id].sync_issue or "")
    assert rows[bad_id].sale_price is None and rows[bad_id].raw_emag_data["sale_price"] == "abc"
    page_two = {p["id"] for p in truth[50:100]}
    assert len({i for i in page_two if rows[i].sync_status == "synced"}) == 49
    again = await run_sync(account="main", mode="full", items_per_page=50)
    assert again["failed"] == 0 and again["updated"] == 1
    fixed = (await stored(clean_engine, "main"))[bad_id]
    assert fixed.sync_status == "synced" and fixed.sync_issue is None and fixed.sale_price is not None


async def test_selective_sync_by_ids_and_skus(sandbox: Any, run_sync: Any, clean_engine: AsyncEngine) -> None:
    from magflow.sync import SelectiveFilters

    truth = sandbox.state.truth("main")
    wanted = [truth[3]["id"], truth[40]["id"]]
    sku = truth[7]["part_number"]
    result = await run_sync(account="main", mode="selective", filters=SelectiveFilters(ids=wanted, skus=[sku]))
    assert result["status"] == "completed" and result["created"] == 3
    assert set(await stored(clean_engine, "main")) == {*wanted, truth[7]["id"]}


async def test_selective_without_filters_is_refused_with_a_clear_message(sandbox: Any, run_sync: Any) -> None:
    from magflow.sync import SyncRequestError

    with pytest.raises(SyncRequestError, match="selective sync needs at least one filter"):
        await run_sync(account="main", mode="selective")
    with pytest.raises(SyncRequestError, match="items_per_page must be between 1 and 100"):
        await run_sync(account="main", mode="full", items_per_page=500)
