"""Regressions for the defects an independent review confirmed (issue 12): each test failed before its fix.

Offers are crafted in the sandbox's catalogue directly: `_set` replaces fields of one offer as eMAG would list it,
`_set_bytes` puts exact bytes on the wire (a lone surrogate escape cannot be made by a JSON encoder)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.db.engine import session_factory
from magflow.models import EmagProductChange, EmagProductConflict, EmagSyncProgress
from magflow.sync import SelectiveFilters
from magflow.sync import mapping as mapping_module
from magflow.sync.local_edits import apply_local_edit, resolve_conflict
from magflow.testing.sync import listed_ids as _ids
from magflow.testing.sync import row_versions, stored
from magflow.testing.sync import set_offer as _set
from magflow.testing.sync import set_offer_bytes as _set_bytes


async def _edit(engine: AsyncEngine, product_id: Any, **changes: Any) -> None:
    async with session_factory(engine)() as session:
        await apply_local_edit(session, product_id, changes, None, actor="ops")
        await session.commit()


async def _changes(engine: AsyncEngine, emag_id: int, change_type: str = "updated") -> list[EmagProductChange]:
    async with session_factory(engine)() as session:
        return list(
            (
                await session.scalars(
                    select(EmagProductChange).where(
                        EmagProductChange.emag_id == emag_id, EmagProductChange.change_type == change_type
                    )
                )
            ).all()
        )


async def _open_conflicts(engine: AsyncEngine) -> list[EmagProductConflict]:
    async with session_factory(engine)() as session:
        query = select(EmagProductConflict).where(EmagProductConflict.status == "open")
        return list((await session.scalars(query)).all())


# 1. Money compared by value ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["emag_priority", "manual"])
async def test_a_local_price_survives_an_emag_change_of_another_field(
    strategy: str, sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    await run_sync(account="main", mode="full")
    offer = _ids(sandbox)[3]
    _set(sandbox, offer, sale_price=199.99, recommended_price=0)
    await run_sync(account="main", mode="full")
    row = (await stored(clean_engine, "main"))[offer]
    await _edit(clean_engine, row.id, sale_price="149.5")
    _set(sandbox, offer, name="Renamed on eMAG")

    result = await run_sync(account="main", mode="incremental", include_inactive=True, strategy=strategy)

    assert result["status"] == "completed" and result["conflicts"] == 0
    row = (await stored(clean_engine, "main"))[offer]
    assert row.sale_price == Decimal("149.5") and row.name == "Renamed on eMAG"
    assert not await _open_conflicts(clean_engine)
    # Only the field that changed is audited: no '0.0000' -> '0' or '199.9900' -> '199.99' rows.
    assert [c.field for c in await _changes(clean_engine, offer) if c.sync_id is not None][-1:] == ["name"]
    assert {c.field for c in await _changes(clean_engine, offer) if c.sync_id is not None} <= {"sale_price", "name"}


# 2. One bad offer never blocks its page -----------------------------------------------------------------------------


async def test_a_nul_character_on_the_first_page_is_cleaned_and_the_account_syncs(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    ids = _ids(sandbox)
    _set(sandbox, ids[0], description="Pasted from Word\x00 text", offer_details={"n\x00te": ["a\x00b"]})
    result = await run_sync(account="main", mode="full")
    assert result["status"] == "completed", result["error_message"]
    rows = await stored(clean_engine, "main")
    assert len(rows) == len(ids)
    row = rows[ids[0]]
    assert row.description == "Pasted from Word text" and row.sync_status == "synced"
    assert row.raw_emag_data["offer_details"] == {"nte": ["ab"]}
    assert "NUL" in (row.sync_issue or "") and "description" in (row.sync_issue or "")
    assert any(e.get("emag_id") == ids[0] and "cleaned" in e["reason"] for e in result["errors"])


async def test_a_lone_surrogate_is_replaced_and_its_page_lands(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    ids = _ids(sandbox)
    name = sandbox.state.truth("main")[7]["name"].encode()
    _set_bytes(sandbox, ids[7], b'"name":"' + name, b'"name":"\\ud83d' + name)
    result = await run_sync(account="main", mode="full")
    assert result["status"] == "completed", result["error_message"]
    rows = await stored(clean_engine, "main")
    assert len(rows) == len(ids)
    assert rows[ids[7]].name == "\ufffd" + name.decode()
    assert "surrogate" in (rows[ids[7]].sync_issue or "")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"part_number_key": "K" * 65}, "part_number_key"),
        ({"currency": "RONXX"}, "currency"),
        ({"sale_price": 10**12}, "sale_price"),
        ({"general_stock": 2**31}, "general_stock"),
        ({"status": 40000}, "status"),
        ({"category_id": 2**63}, "category_id"),
    ],
)
async def test_a_value_its_column_cannot_hold_quarantines_only_that_offer(
    fields: dict[str, Any], reason: str, sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    ids = _ids(sandbox)
    await run_sync(account="main", mode="full")
    before = (await stored(clean_engine, "main"))[ids[0]]
    _set(sandbox, ids[0], **fields)  # an existing product: it keeps its last good data
    _set(sandbox, ids[1], **fields, part_number="NEW-BAD")
    sandbox.state.accounts["main"].products[ids[1]]["id"] = ids[1]
    result = await run_sync(account="main", mode="full")
    assert result["status"] == "completed", result["error_message"]
    assert result["failed"] == 2
    rows = await stored(clean_engine, "main")
    assert len(rows) == len(ids) and all(rows[i].sync_status == "synced" for i in ids[2:])
    for offer in ids[:2]:
        assert rows[offer].sync_status == "failed" and reason in (rows[offer].sync_issue or "")
    assert rows[ids[0]].sale_price == before.sale_price
    # The next run says the same, without writing the rows again.
    versions = await row_versions(clean_engine)
    again = await run_sync(account="main", mode="full")
    assert again["status"] == "completed" and again["failed"] == 2
    assert await row_versions(clean_engine) == versions


async def test_a_page_the_database_refuses_is_written_row_by_row(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    ids = _ids(sandbox)
    bad = ids[4]

    def hook(offer: Any, context: Any) -> dict[str, Any]:
        # An operator's hook producing a value PostgreSQL refuses (NUL in jsonb) for one offer.
        return {"note": "bad\x00" if offer.id == bad else "ok"}

    result = await run_sync(account="main", mode="full", service={"transform": hook})
    assert result["status"] == "completed", result["error_message"]
    rows = await stored(clean_engine, "main")
    assert rows[bad].sync_status == "failed" and "cannot be stored" in (rows[bad].sync_issue or "")
    assert all(rows[i].computed_fields == {"note": "ok"} for i in ids if i != bad)


# 3. Conflict resolution ---------------------------------------------------------------------------------------------


async def _conflict_case(sandbox: Any, run_sync: Any, engine: AsyncEngine) -> tuple[int, Any]:
    await run_sync(account="main", mode="full")
    offer = _ids(sandbox)[10]
    row = (await stored(engine, "main"))[offer]
    await _edit(engine, row.id, sale_price="111.11")
    _set(sandbox, offer, sale_price=222.22)
    result = await run_sync(account="main", mode="incremental", include_inactive=True, strategy="manual")
    assert result["conflicts"] == 1
    return offer, row.id


async def test_resolving_with_emag_takes_emags_latest_value(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    offer, _ = await _conflict_case(sandbox, run_sync, clean_engine)
    _set(sandbox, offer, sale_price=333.33, name="Changed again")
    await run_sync(account="main", mode="incremental", include_inactive=True, strategy="manual")
    (conflict,) = await _open_conflicts(clean_engine)
    assert Decimal(conflict.emag_value) == Decimal("333.33")  # the stale one was superseded
    async with session_factory(clean_engine)() as session:
        await resolve_conflict(session, conflict.id, "emag", None, actor="ops")
        await session.commit()
    assert (await stored(clean_engine, "main"))[offer].sale_price == Decimal("333.33")
    _set(sandbox, offer, sale_price=444.44)  # eMAG moves on: the next sync follows it
    await run_sync(account="main", mode="incremental", include_inactive=True, strategy="manual")
    row = (await stored(clean_engine, "main"))[offer]
    assert row.sale_price == Decimal("444.44") and row.sync_status == "synced"


async def test_a_conflict_closes_when_emag_goes_back_to_the_base(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    offer, _ = await _conflict_case(sandbox, run_sync, clean_engine)
    (conflict,) = await _open_conflicts(clean_engine)
    _set(sandbox, offer, sale_price=float(conflict.base_value))
    await run_sync(account="main", mode="incremental", include_inactive=True, strategy="manual")
    assert not await _open_conflicts(clean_engine)
    row = (await stored(clean_engine, "main"))[offer]
    assert row.sale_price == Decimal("111.11") and row.sync_status == "synced"


async def test_resolving_with_local_keeps_the_edited_value_after_an_emag_priority_run(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    offer, _ = await _conflict_case(sandbox, run_sync, clean_engine)
    _set(sandbox, offer, name="Scheduled run sees this")
    await run_sync(account="main", mode="incremental", include_inactive=True, strategy="emag_priority")
    assert (await stored(clean_engine, "main"))[offer].sale_price == Decimal("222.22")
    (conflict,) = await _open_conflicts(clean_engine)
    async with session_factory(clean_engine)() as session:
        await resolve_conflict(session, conflict.id, "local", None, actor="ops")
        await session.commit()
    assert (await stored(clean_engine, "main"))[offer].sale_price == Decimal("111.11")


# 6, 7. Derived columns and GPSR ------------------------------------------------------------------------------------


async def test_a_kept_local_value_updates_the_columns_derived_from_it(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    await run_sync(account="main", mode="full", include_inactive=True)
    offer = next(p["id"] for p in sandbox.state.truth("main") if p["status"] == 1)
    row = (await stored(clean_engine, "main"))[offer]
    await _edit(clean_engine, row.id, name="Cană locală specială", status=0)
    _set(sandbox, offer, sale_price=12.5)
    await run_sync(account="main", mode="incremental", include_inactive=True, strategy="local_priority")
    row = (await stored(clean_engine, "main"))[offer]
    assert row.name == "Cană locală specială" and row.status == 0 and row.sale_price == Decimal("12.5")
    assert row.is_active is False and "cana locala speciala" in row.search_text


async def test_gpsr_details_read_by_id_survive_list_reads(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    offer = _ids(sandbox)[2]
    await run_sync(account="main", mode="selective", filters=SelectiveFilters(ids=[offer]))
    detailed = (await stored(clean_engine, "main"))[offer].gpsr_manufacturer
    assert isinstance(detailed, list) and detailed
    await run_sync(account="main", mode="full")
    versions = await row_versions(clean_engine)
    await run_sync(account="main", mode="full")
    assert await row_versions(clean_engine) == versions  # the two shapes no longer rewrite each other
    assert (await stored(clean_engine, "main"))[offer].gpsr_manufacturer == detailed
    assert not [c for c in await _changes(clean_engine, offer) if c.field and c.field.startswith("gpsr")]


# 11, 12. Checkpoints and progress ----------------------------------------------------------------------------------


async def test_the_checkpoint_after_the_first_page_is_saved(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    sandbox.state.faults.inject("500", count=50, page=2)
    failed = await run_sync(account="main", mode="full", config={"max_attempts": 1})
    assert failed["status"] == "partial"
    async with session_factory(clean_engine)() as session:
        progress = await session.scalar(select(EmagSyncProgress).where(EmagSyncProgress.sync_id == failed["sync_id"]))
        assert progress is not None and progress.checkpoint["next_page"] == 2
    sandbox.state.faults.clear()
    resumed = await run_sync(account="main", mode="full")
    assert resumed["status"] == "completed" and resumed["created"] == len(_ids(sandbox)) - 100
    async with session_factory(clean_engine)() as session:
        progress = await session.scalar(select(EmagSyncProgress).where(EmagSyncProgress.sync_id == resumed["sync_id"]))
        assert progress is not None and progress.current_item <= progress.total_items


async def test_progress_stays_below_100_percent_during_a_second_pass(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    seen: list[dict[str, Any]] = []
    grown = False

    def on_progress(account: str, values: dict[str, Any]) -> None:
        nonlocal grown
        seen.append(dict(values))
        if not grown and values["current_page"] == 2:
            sandbox.state.add_products("main", 120)  # the count moves: a second pass follows
            grown = True

    result = await run_sync(account="main", mode="full", service={"on_progress": on_progress})
    assert result["status"] == "completed"
    assert len(seen) > 6  # two passes
    assert all(v["percentage"] < 100 and v["current_item"] <= v["total_items"] for v in seen)


# Also fixed ---------------------------------------------------------------------------------------------------------


async def test_a_page_without_results_is_retried_not_taken_as_the_end(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    sandbox.state.faults.inject("no_results", count=1, page=2)
    result = await run_sync(account="main", mode="incremental", include_inactive=True)
    assert result["status"] == "completed"
    assert len(await stored(clean_engine, "main")) == len(_ids(sandbox))


async def test_an_empty_page_mid_scan_does_not_end_an_incremental_as_completed(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    sandbox.state.faults.inject("empty_page", count=2, page=2)
    result = await run_sync(account="main", mode="incremental", include_inactive=True)
    assert result["status"] == "partial" and "page 2" in result["error_message"]
    sandbox.state.faults.clear()
    again = await run_sync(account="main", mode="incremental", include_inactive=True)
    assert again["status"] == "completed"
    assert len(await stored(clean_engine, "main")) == len(_ids(sandbox))


async def test_a_mapping_change_reaches_rows_emag_did_not_change(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await run_sync(account="main", mode="full")
    offer = _ids(sandbox)[0]
    async with clean_engine.begin() as conn:  # what an older, buggier mapping stored
        await conn.execute(
            text("UPDATE emag_products_v2 SET brand = 'wrongly parsed' WHERE emag_id = :i"), {"i": offer}
        )
    monkeypatch.setattr(mapping_module, "MAPPING_VERSION", mapping_module.MAPPING_VERSION + 1)
    result = await run_sync(account="main", mode="full")
    assert result["updated"] == len(_ids(sandbox))
    row = (await stored(clean_engine, "main"))[offer]
    assert row.brand == next(p for p in sandbox.state.truth("main") if p["id"] == offer)["brand"]
    async with session_factory(clean_engine)() as session:
        audited = await session.scalar(
            select(func.count()).select_from(EmagProductChange).where(EmagProductChange.change_type == "updated")
        )
    assert audited == 1  # only the field that really differed


async def test_a_selective_sync_by_many_ids_records_their_total(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    ids = _ids(sandbox)[:7]
    result = await run_sync(account="main", mode="selective", filters=SelectiveFilters(ids=ids))
    assert result["accounts"]["main"]["total_items"] == 7 and result["created"] == 7


async def test_the_raw_payload_orjson_cannot_read_still_decodes() -> None:
    from magflow.emag.envelope import loads as _json

    body = b'{"isError":false,"results":[{"id":1,"name":"\\ud83dhalf"}]}'
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    assert _json(body)["results"][0]["name"] == "\ud83dhalf"


# 4, 5. The sweep and the end of a scan ------------------------------------------------------------------------------


def _delete(sandbox: Any, ids: list[int], account: str = "main") -> None:
    state = sandbox.state
    with state._lock:
        data = state.accounts[account]
        gone = set(ids)
        data.ids = [i for i in data.ids if i not in gone]
        for offer in ids:
            data.products.pop(offer, None)
            data.list_bytes.pop(offer, None)


async def test_balanced_deletions_and_additions_during_a_scan_mark_only_the_deleted_missing(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    await run_sync(account="main", mode="full")
    deleted = _ids(sandbox)[5:35]  # from the first pages: the rows after them shift back past the scan

    def churn() -> None:
        _delete(sandbox, deleted)
        sandbox.state.add_products("main", len(deleted))  # the count does not move

    sandbox.state.after_reads(3, churn, account="main")
    result = await run_sync(account="main", mode="full", items_per_page=20)

    assert result["status"] == "completed", result["error_message"]
    rows = await stored(clean_engine, "main")
    assert sorted(i for i, r in rows.items() if r.is_missing) == sorted(deleted)
    assert all(not rows[i].is_missing for i in _ids(sandbox))


async def test_a_count_lagging_the_listing_neither_hides_nor_sweeps_offers(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    await run_sync(account="main", mode="full")
    sandbox.state.set_count_lag(50)  # eMAG counts 250 of the 300 offers it lists: 5 full pages of 50
    result = await run_sync(account="main", mode="full", items_per_page=50)
    assert result["status"] == "completed", result["error_message"]
    assert result["missing"] == 0
    added = sandbox.state.add_products("main", 10)
    again = await run_sync(account="main", mode="full", items_per_page=50)
    assert again["status"] == "completed" and again["created"] == 10
    rows = await stored(clean_engine, "main")
    assert all(i in rows and not rows[i].is_missing for i in _ids(sandbox)) and set(added) <= set(rows)


async def test_newest_wins_keeps_a_local_edit_made_after_emags_last_confirmed_read(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    await run_sync(account="main", mode="full")
    async with clean_engine.begin() as conn:  # that read was an hour ago
        await conn.execute(text("UPDATE emag_page_reads SET read_at = read_at - interval '1 hour'"))
    edited, older = _ids(sandbox)[20:22]
    rows = await stored(clean_engine, "main")
    await _edit(clean_engine, rows[edited].id, sale_price="77.7")
    await _edit(clean_engine, rows[older].id, sale_price="88.8")
    async with clean_engine.begin() as conn:  # this edit was made before that read
        await conn.execute(
            text(
                "UPDATE emag_products_v2 SET local_edits = jsonb_set(local_edits, '{sale_price,edited_at}', "
                "'\"2000-01-01T00:00:00+00:00\"') WHERE emag_id = :i"
            ),
            {"i": older},
        )
    _set(sandbox, edited, sale_price=55.5)
    _set(sandbox, older, sale_price=66.6)
    await run_sync(account="main", mode="incremental", include_inactive=True, strategy="newest_wins")
    rows = await stored(clean_engine, "main")
    # eMAG changed somewhere between the read an hour ago and now: dated halfway, before the edit made just now.
    assert rows[edited].sale_price == Decimal("77.7")
    assert rows[older].sale_price == Decimal("66.6")
