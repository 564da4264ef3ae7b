"""What the database holds after a step, read in one go, and the invariants that need no model: one row per offer,
an audit trail that matches the columns, at most one running sync per account, progress that never passes 100%."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from .payloads import COMPARED, cmp
from .reference import StoredRow

# Audit rows that record a column taking a new value (the writer's strategy notes and superseded conflicts do not).
VALUE_CHANGES = ("updated", "local_edit")
MANUAL_RESOLUTION = "conflict_resolution:manual"


@dataclass
class Snapshot:
    rows: dict[tuple[str, int], StoredRow]
    product_ids: dict[Any, tuple[str, int]]
    duplicates: list[tuple[str, int]]
    audit: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    progress: list[dict[str, Any]]
    page_reads: dict[str, set[tuple[str, int]]]  # sync_id -> offers its committed pages held


async def take(engine: AsyncEngine) -> Snapshot:
    async with engine.connect() as conn:
        products = (await conn.execute(text("SELECT * FROM emag_products_v2"))).mappings().all()
        conflicts = (
            await conn.execute(
                text(
                    "SELECT product_id, field, base_value, local_value, emag_value FROM emag_product_conflicts "
                    "WHERE status = 'open'"
                )
            )
        ).all()
        audit = (
            await conn.execute(
                text(
                    "SELECT id, product_id, account_type, emag_id, change_type, field, old_value, new_value, source "
                    "FROM emag_product_changes ORDER BY id"
                )
            )
        ).mappings()
        audit_rows = [dict(r) for r in audit.all()]
        runs = [dict(r) for r in (await conn.execute(text("SELECT * FROM emag_sync_logs"))).mappings().all()]
        progress = [dict(r) for r in (await conn.execute(text("SELECT * FROM emag_sync_progress"))).mappings().all()]
        reads = (await conn.execute(text("SELECT sync_id, account_type, emag_ids FROM emag_page_reads"))).all()
    open_by_product: dict[Any, list[tuple[str, Any, Any, Any]]] = defaultdict(list)
    for c in conflicts:
        open_by_product[c.product_id].append((c.field, c.base_value, c.local_value, c.emag_value))
    rows: dict[tuple[str, int], StoredRow] = {}
    ids: dict[Any, tuple[str, int]] = {}
    seen: Counter[tuple[str, int]] = Counter()
    for p in products:
        key = (p["account_type"], int(p["emag_id"]))
        seen[key] += 1
        ids[p["id"]] = key
        rows[key] = StoredRow(
            columns={name: p[name] for name in COMPARED},
            raw=p["raw_emag_data"],
            sync_status=p["sync_status"],
            sync_issue=p["sync_issue"],
            is_missing=p["is_missing"],
            is_active=p["is_active"],
            main_image_url=p["main_image_url"],
            local_edits=dict(p["local_edits"] or {}),
            conflicts=open_by_product.get(p["id"], []),
            gpsr={"manufacturer": p["gpsr_manufacturer"], "eu_representative": p["gpsr_eu_representative"]},
            search_text=p["search_text"],
        )
    page_reads: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for sync_id, account, emag_ids in reads:
        page_reads[str(sync_id)].update((account, int(i)) for i in emag_ids or [])
    return Snapshot(
        rows=rows,
        product_ids=ids,
        duplicates=[k for k, n in seen.items() if n > 1],
        audit=audit_rows,
        runs=runs,
        progress=progress,
        page_reads=page_reads,
    )


def generic_violations(snap: Snapshot, live: set[tuple[str, int]], sync_in_flight: bool = False) -> list[str]:
    problems = [f"{a}/{i}: stored more than once" for a, i in snap.duplicates]
    problems += [
        f"{key[0]}/{key[1]}: marked missing although eMAG lists it"
        for key, row in snap.rows.items()
        if row.is_missing and key in live
    ]
    problems += _audit_violations(snap)
    problems += _run_violations(snap, sync_in_flight)
    return problems


def _audit_violations(snap: Snapshot) -> list[str]:
    problems = []
    created = Counter((r["account_type"], r["emag_id"]) for r in snap.audit if r["change_type"] == "created")
    problems += [f"{a}/{i}: {n} 'created' audit rows" for (a, i), n in created.items() if n > 1]
    chains: dict[tuple[Any, str], list[dict[str, Any]]] = defaultdict(list)
    for r in snap.audit:
        name = r["field"]
        if name not in COMPARED:
            continue
        if r["change_type"] == "updated" and cmp(name, r["old_value"]) == cmp(name, r["new_value"]):
            problems.append(
                f"{r['account_type']}/{r['emag_id']}: audit row {r['id']} says {name} was updated but "
                f"{r['old_value']!r} and {r['new_value']!r} are the same value"
            )
        if r["change_type"] in VALUE_CHANGES or (
            r["change_type"] == "conflict_resolved" and r["source"] == MANUAL_RESOLUTION
        ):
            chains[(r["product_id"], name)].append(r)
    for (product_id, name), chain in chains.items():
        key = snap.product_ids.get(product_id)
        where = f"{key[0]}/{key[1]}" if key else str(product_id)
        for before, after in itertools.pairwise(chain):
            if cmp(name, after["old_value"]) != cmp(name, before["new_value"]):
                problems.append(
                    f"{where}: audit row {after['id']} ({after['change_type']}) says {name} was "
                    f"{_short(after['old_value'])}, but row {before['id']} ({before['change_type']}) had set it to "
                    f"{_short(before['new_value'])}"
                )
        if key is not None and key in snap.rows:
            now = snap.rows[key].columns.get(name)
            last = chain[-1]
            if cmp(name, last["new_value"]) != cmp(name, now):
                problems.append(
                    f"{where}: {name} is {_short(now)} but its last audit row {last['id']} ({last['change_type']}) "
                    f"set it to {_short(last['new_value'])}"
                )
    return problems


def _run_violations(snap: Snapshot, sync_in_flight: bool) -> list[str]:
    problems = []
    running: Counter[str] = Counter()
    for run in snap.runs:
        if run["status"] == "running":
            for account in ("main", "fbe"):
                if run["account_type"] in (account, "both"):
                    running[account] += 1
    limit = 1 if sync_in_flight else 0
    problems += [f"{n} syncs of account {a} say running" for a, n in running.items() if n > limit]
    for p in snap.progress:
        where = f"progress of {p['sync_id']} ({p['account_type']}, {p['status']})"
        if p["percentage"] > 100:
            problems.append(f"{where} is at {p['percentage']}%")
        if p["current_item"] > p["total_items"]:
            problems.append(f"{where} says item {p['current_item']} of {p['total_items']}")
        if (p["percentage"] >= 100) != (p["status"] == "completed"):
            problems.append(f"{where} says {p['percentage']}%")
    return problems


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) < 80 else shown[:77] + "..."
