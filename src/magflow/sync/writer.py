"""Writing one page of offers: set-based, a few statements per page whatever its size.

A product whose content hash did not change costs no row write. New and changed products go in one
INSERT ... ON CONFLICT DO UPDATE; their audit rows in one INSERT; open conflicts in one INSERT.

One bad offer never stops its page: an offer that cannot be parsed or stored is quarantined (its row keeps its
last good data, says sync_status 'failed' and why in sync_issue; a new one gets a row holding only its payload).
If the page statement still fails, the page is written again row by row inside savepoints, so the database
itself names the culprit, which is quarantined with the database's reason.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from magflow.emag import ProductOffer, RejectedOffer
from magflow.emag.errors import emag_text
from magflow.models import EmagProduct, EmagProductConflict
from magflow.sync.conflicts import resolve
from magflow.sync.enums import ConflictResolutionStrategy
from magflow.sync.mapping import (
    EMAG_FIELDS,
    GPSR_FIELDS,
    MAX_SKU,
    canonical_json,
    comparable,
    derive,
    jsonable,
    offer_to_row,
    quarantine_hash,
)
from magflow.sync.transforms import Transform, TransformContext

log = logging.getLogger("magflow.sync")

SYNC_OWNED = (*EMAG_FIELDS, "raw_emag_data", "computed_fields", "content_hash", "search_text", "sync_issue")
SYNC_META = (
    "local_edits",
    "sync_status",
    "is_missing",
    "missing_since",
    "last_seen_at",
    "last_synced_at",
    "emag_changed_at",
    "last_sync_id",
)
_WRITTEN = ("account_type", "emag_id", *SYNC_OWNED, *SYNC_META)
UPSERT_SQL = f"""
WITH written AS (
    INSERT INTO emag_products_v2 ({", ".join(_WRITTEN)})
    SELECT {", ".join(_WRITTEN)} FROM jsonb_populate_recordset(NULL::emag_products_v2, $1::jsonb)
    ON CONFLICT (account_type, emag_id) DO UPDATE SET
        {", ".join(f"{c} = excluded.{c}" for c in (*SYNC_OWNED, *SYNC_META))}, updated_at = now()
    RETURNING id, account_type, emag_id, (xmax = 0) AS inserted
), created AS (
    INSERT INTO emag_product_changes (product_id, account_type, emag_id, change_type, source, sync_id, actor)
    SELECT id, account_type, emag_id, 'created', 'emag', $2::uuid, $3::varchar FROM written WHERE inserted
)
SELECT emag_id, id, inserted FROM written
"""
SEEN_SQL = """
WITH added AS (
    INSERT INTO emag_sync_seen (scan_id, account_type, emag_id)
    SELECT $1::uuid, $2::varchar, unnest($3::bigint[]) ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM added
"""
PAGE_READ_SQL = """
INSERT INTO emag_page_reads (account_type, sync_id, read_at, emag_ids) VALUES ($1::varchar, $2::uuid, $3, $4::bigint[])
"""
EXISTING_SQL = """
SELECT id, emag_id, content_hash, is_missing, local_edits, sync_status, last_seen_at,
       gpsr_manufacturer, gpsr_eu_representative
FROM emag_products_v2
WHERE account_type = $1::varchar AND emag_id = ANY($2::bigint[])
ORDER BY emag_id FOR UPDATE
"""
# The last read before this one of each product: it still showed the stored eMAG values (newest_wins).
LAST_READ_SQL = """
SELECT e.emag_id, (SELECT max(r.read_at) FROM emag_page_reads r
                   WHERE r.account_type = $1::varchar AND r.emag_ids @> ARRAY[e.emag_id] AND r.read_at < $3)
FROM unnest($2::bigint[]) AS e(emag_id)
"""
QUARANTINE_EXISTING_SQL = """
WITH bad AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb)
        AS b(emag_id bigint, reason text, raw_emag_data jsonb, content_hash text, sku text, name text)
), marked AS (
    -- A row never stored with good data (emag_changed_at is null: it holds only a quarantined payload) shows the
    -- payload eMAG sends now; a product with good data keeps it.
    UPDATE emag_products_v2 p
    SET sync_status = 'failed', sync_issue = bad.reason, is_missing = false, missing_since = NULL,
        raw_emag_data = CASE WHEN p.emag_changed_at IS NULL THEN bad.raw_emag_data ELSE p.raw_emag_data END,
        content_hash = CASE WHEN p.emag_changed_at IS NULL THEN bad.content_hash ELSE p.content_hash END,
        sku = CASE WHEN p.emag_changed_at IS NULL THEN bad.sku ELSE p.sku END,
        name = CASE WHEN p.emag_changed_at IS NULL THEN bad.name ELSE p.name END,
        last_sync_id = $3::uuid, updated_at = now()
    FROM bad
    WHERE p.account_type = $2::varchar AND p.emag_id = bad.emag_id
      AND (p.sync_status <> 'failed' OR p.sync_issue IS DISTINCT FROM bad.reason OR p.is_missing
           OR (p.emag_changed_at IS NULL AND p.content_hash <> bad.content_hash))
    RETURNING p.id, p.emag_id, bad.reason
)
INSERT INTO emag_product_changes
    (product_id, account_type, emag_id, change_type, field, new_value, source, sync_id, actor)
SELECT id, $2::varchar, emag_id, 'quarantined', NULL, to_jsonb(reason), 'emag', $3::uuid, $4::varchar FROM marked
"""
_PLACEHOLDER = ("account_type", "emag_id", "sku", "name", "raw_emag_data", "content_hash", "sync_status", "sync_issue")
QUARANTINE_NEW_SQL = f"""
WITH written AS (
    INSERT INTO emag_products_v2 ({", ".join(_PLACEHOLDER)}, is_active, last_sync_id)
    SELECT {", ".join(_PLACEHOLDER)}, false, $2::uuid
    FROM jsonb_populate_recordset(NULL::emag_products_v2, $1::jsonb)
    ON CONFLICT (account_type, emag_id) DO NOTHING
    RETURNING id, account_type, emag_id, sync_issue
)
INSERT INTO emag_product_changes
    (product_id, account_type, emag_id, change_type, field, new_value, source, sync_id, actor)
SELECT id, account_type, emag_id, 'quarantined', NULL, to_jsonb(sync_issue), 'emag', $2::uuid, $3::varchar
FROM written
"""
OPEN_CONFLICTS_SQL = """
SELECT id, product_id, field, base_value, local_value, emag_value FROM emag_product_conflicts
WHERE status = 'open' AND product_id = ANY($1::uuid[])
"""
CLOSE_CONFLICT_SQL = """
UPDATE emag_product_conflicts SET status = 'superseded', resolution = $2::varchar, resolved_at = $3,
    resolved_by = $4::varchar
WHERE id = $1 AND status = 'open'
"""
_AUDITED = (
    "product_id",
    "account_type",
    "emag_id",
    "change_type",
    "field",
    "old_value",
    "new_value",
    "source",
    "sync_id",
    "actor",
)
AUDIT_SQL = f"""
INSERT INTO emag_product_changes ({", ".join(_AUDITED)})
SELECT {", ".join(_AUDITED)} FROM jsonb_populate_recordset(NULL::emag_product_changes, $1::jsonb)
"""


@dataclass
class PageOutcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    conflicts: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    repeated: int = 0  # offers this scan had already read on an earlier page: the listing shifted under it
    anonymous: int = 0  # listed offers without a usable id (quarantined, not countable as seen)

    @property
    def processed(self) -> int:
        return self.created + self.updated + self.unchanged + self.failed

    def add(self, other: PageOutcome) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.failed += other.failed
        self.conflicts += other.conflicts
        self.errors.extend(other.errors)


@dataclass(frozen=True)
class Quarantined:
    emag_id: int | None
    reason: str
    raw: Any


@dataclass
class _Plan:
    """What one page will write: rows, audit rows, conflicts to open and to close."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    closed: list[tuple[int, str]] = field(default_factory=list)
    unchanged: int = 0


@dataclass
class PageWriter:
    account: str
    sync_id: uuid.UUID
    strategy: ConflictResolutionStrategy
    transform: Transform | None = None
    transform_context: TransformContext | None = None
    # Who the audit rows name: the run's triggered_by (api:<token>, cli, celery:beat), so a sync that overwrote
    # a local edit says who started it.
    actor: str = "sync"

    def _rows(
        self, offers: Sequence[ProductOffer], rejected: Sequence[RejectedOffer]
    ) -> tuple[dict[int, dict[str, Any]], list[Quarantined]]:
        bad = [Quarantined(r.offer_id, f"malformed product: {r.reason}", r.raw) for r in rejected]
        rows: dict[int, dict[str, Any]] = {}
        context = self.transform_context or TransformContext(account=self.account)
        for offer in offers:
            try:
                computed = dict(self.transform(offer, context)) if self.transform else {}
                rows[offer.id] = offer_to_row(self.account, offer, computed)
            except Exception as exc:  # a bad offer, or the operator's transformation hook failing on it
                bad.append(Quarantined(offer.id, emag_text(f"cannot be stored: {exc}"), offer.raw))
        return rows, bad

    async def write(
        self,
        session: AsyncSession,
        offers: Sequence[ProductOffer],
        rejected: Sequence[RejectedOffer],
        observed_at: datetime,
        scan_id: uuid.UUID | None = None,
    ) -> PageOutcome:
        # Mapping and hashing a page is CPU work; in a thread the event loop keeps serving timers (the rate
        # budget's slots) and the other account's I/O meanwhile.
        rows, bad = await asyncio.to_thread(self._rows, offers, rejected)
        # Every offer eMAG listed counts as seen, stored or quarantined: a quarantined offer still exists.
        seen_ids = sorted({o.id for o in offers} | {r.offer_id for r in rejected if r.offer_id is not None})
        conn = await session.connection()
        repeated = 0
        if seen_ids:
            if scan_id is not None:
                added = (await conn.exec_driver_sql(SEEN_SQL, (scan_id, self.account, seen_ids))).scalar_one()
                repeated = len(seen_ids) - int(added)
            await conn.exec_driver_sql(PAGE_READ_SQL, (self.account, self.sync_id, observed_at, seen_ids))
        outcome = PageOutcome()
        if rows:
            try:
                async with session.begin_nested():
                    outcome = await self._store(session, rows, observed_at)
            except DBAPIError as exc:
                # Something in the page is still unstorable: find it row by row, each in its own savepoint.
                log.warning(
                    "page statement failed sync_id=%s account=%s error=%s; writing its %d products one by one",
                    self.sync_id, self.account, brief(exc), len(rows),
                )  # fmt: skip
                outcome = await self._store_each(session, rows, observed_at, bad)
        for item in bad:
            outcome.failed += 1
            outcome.errors.append({"account": self.account, "emag_id": item.emag_id, "reason": item.reason})
        for emag_id, row in rows.items():
            if row.get("sync_issue") and not any(q.emag_id == emag_id for q in bad):
                outcome.errors.append(
                    {"account": self.account, "emag_id": emag_id, "reason": row["sync_issue"], "cleaned": True}
                )
        if bad:
            await self._quarantine(session, bad)
        outcome.repeated = repeated
        outcome.anonymous = sum(1 for r in rejected if r.offer_id is None)
        return outcome

    async def _store_each(
        self, session: AsyncSession, rows: dict[int, dict[str, Any]], observed_at: datetime, bad: list[Quarantined]
    ) -> PageOutcome:
        outcome = PageOutcome()
        for emag_id, row in rows.items():
            try:
                async with session.begin_nested():
                    outcome.add(await self._store(session, {emag_id: row}, observed_at))
            except DBAPIError as exc:
                bad.append(Quarantined(emag_id, f"cannot be stored: {brief(exc)}", row.get("raw_emag_data")))
        return outcome

    async def _store(
        self, session: AsyncSession, rows: dict[int, dict[str, Any]], observed_at: datetime
    ) -> PageOutcome:
        conn = await session.connection()
        outcome = PageOutcome()
        existing = {r.emag_id: r for r in (await conn.exec_driver_sql(EXISTING_SQL, (self.account, list(rows)))).all()}
        new_ids = [i for i in rows if i not in existing]
        changed_ids = [i for i, old in existing.items() if _changed(old, rows[i])]
        outcome.unchanged = len(existing) - len(changed_ids)
        if not new_ids and not changed_ids:
            return outcome

        plan = _Plan(rows=[self._full_row(rows[i], {}, observed_at) for i in new_ids])
        if changed_ids:
            await self._plan_changes(session, plan, rows, existing, changed_ids, observed_at)

        written = await self._upsert(session, plan.rows)
        outcome.created = sum(written)  # their "created" audit rows are written by the upsert statement itself
        outcome.updated = len(written) - outcome.created
        for conflict_id, why in plan.closed:
            await conn.exec_driver_sql(CLOSE_CONFLICT_SQL, (conflict_id, why, observed_at, self.actor))
        if plan.conflicts:
            await session.execute(insert(EmagProductConflict).values(plan.conflicts))
        outcome.conflicts = len(plan.conflicts)
        if plan.audit:
            await conn.exec_driver_sql(AUDIT_SQL, (canonical_json(plan.audit).decode(),))
        return outcome

    async def _plan_changes(
        self,
        session: AsyncSession,
        plan: _Plan,
        rows: dict[int, dict[str, Any]],
        existing: dict[int, Any],
        changed_ids: list[int],
        observed_at: datetime,
    ) -> None:
        conn = await session.connection()
        old_values = await self._old_values(session, [existing[i].id for i in changed_ids])
        open_conflicts = await self._open_conflicts(session, [existing[i].id for i in changed_ids])
        edited = [i for i in changed_ids if existing[i].local_edits]
        confirmed: dict[int, datetime | None] = {}
        if edited and self.strategy is ConflictResolutionStrategy.NEWEST_WINS:
            result = await conn.exec_driver_sql(LAST_READ_SQL, (self.account, edited, observed_at))
            pairs: list[Any] = list(result.all())
            confirmed = {int(r[0]): r[1] or existing[int(r[0])].last_seen_at for r in pairs}
        for emag_id in changed_ids:
            old = existing[emag_id]
            before = old_values[old.id]
            emag_row = rows[emag_id]
            row = dict(emag_row)
            _keep_richer_gpsr(row, before)
            edits: dict[str, Any] = {}
            new_conflicts: list[dict[str, Any]] = []
            if old.local_edits:
                res = resolve(row, before, dict(old.local_edits), self.strategy, observed_at, confirmed.get(emag_id))
                row.update(res.keep_local)
                derive(row)  # is_active, search_text, main_image_url follow the kept local values
                edits = res.local_edits
                for conflict, winner in res.resolved:
                    plan.audit.append(
                        self._audit(
                            old.id,
                            emag_id,
                            "conflict_resolved",
                            conflict.field,
                            conflict.local if winner == "emag" else conflict.emag,
                            conflict.emag if winner == "emag" else conflict.local,
                            f"conflict_resolution:{self.strategy.value}",
                        )
                    )
                new_conflicts = [
                    {
                        "product_id": old.id,
                        "account_type": self.account,
                        "emag_id": emag_id,
                        "field": c.field,
                        "base_value": c.base,
                        "local_value": c.local,
                        "emag_value": c.emag,
                        "sync_id": self.sync_id,
                    }
                    for c in res.open_conflicts
                ]
            still_open = self._settle_open_conflicts(
                plan, old.id, emag_id, emag_row, open_conflicts.get(old.id, []), new_conflicts
            )
            if old.is_missing:
                plan.audit.append(self._audit(old.id, emag_id, "restored", None, None, None, "emag"))
            for name in EMAG_FIELDS:
                if comparable(name, before.get(name)) != comparable(name, row.get(name)):
                    old_json, new_json = jsonable(before.get(name)), jsonable(row.get(name))
                    plan.audit.append(self._audit(old.id, emag_id, "updated", name, old_json, new_json, "emag"))
            full = self._full_row(row, edits, observed_at)
            full["sync_status"] = "conflict" if still_open else "synced"
            plan.rows.append(full)

    def _settle_open_conflicts(
        self,
        plan: _Plan,
        product_id: uuid.UUID,
        emag_id: int,
        emag_row: dict[str, Any],
        open_rows: list[Any],
        new_conflicts: list[dict[str, Any]],
    ) -> bool:
        """Close open conflicts that eMAG's new value settled (it went back to the base, or now equals the local
        value) or replaced (a new conflict with the new value takes its place); True when one stays open."""
        new_by_field = {c["field"]: c for c in new_conflicts}
        remaining = 0
        for conflict in open_rows:
            name = conflict.field
            if name not in emag_row:
                remaining += 1
                continue
            now_emag = comparable(name, emag_row[name])
            replacement = new_by_field.get(name)
            if now_emag == comparable(name, conflict.emag_value):
                if replacement is not None:
                    new_conflicts.remove(replacement)  # the same conflict is already open
                remaining += 1
                continue
            if now_emag == comparable(name, conflict.base_value):
                why = "emag_reverted"
            elif now_emag == comparable(name, conflict.local_value):
                why = "converged"
            else:
                why = "emag_changed"
                if replacement is None:
                    # The local edit was spent meanwhile (another strategy ran), but the operator's question stays:
                    # a new conflict carries the local value against eMAG's current one.
                    replacement = {
                        "product_id": product_id,
                        "account_type": self.account,
                        "emag_id": emag_id,
                        "field": name,
                        "base_value": conflict.base_value,
                        "local_value": conflict.local_value,
                        "emag_value": jsonable(emag_row[name]),
                        "sync_id": self.sync_id,
                    }
                    new_conflicts.append(replacement)
            plan.closed.append((conflict.id, why))
            plan.audit.append(
                self._audit(product_id, emag_id, "conflict_superseded", name, conflict.emag_value,
                            jsonable(emag_row[name]), f"conflict_resolution:{why}")
            )  # fmt: skip
        plan.conflicts.extend(new_conflicts)
        return remaining + len(new_conflicts) > 0

    def _full_row(self, row: dict[str, Any], edits: dict[str, Any], observed_at: datetime) -> dict[str, Any]:
        return {
            **row,
            "local_edits": edits,
            "sync_status": "synced",
            "is_missing": False,
            "missing_since": None,
            "last_seen_at": observed_at,
            "last_synced_at": observed_at,
            "emag_changed_at": observed_at,
            "last_sync_id": self.sync_id,
        }

    def _audit(
        self,
        product_id: uuid.UUID,
        emag_id: int,
        change_type: str,
        name: str | None,
        old: Any,
        new: Any,
        source: str,
    ) -> dict[str, Any]:
        return {
            "product_id": product_id,
            "account_type": self.account,
            "emag_id": emag_id,
            "change_type": change_type,
            "field": name,
            "old_value": old,
            "new_value": new,
            "source": source,
            "sync_id": self.sync_id,
            "actor": self.actor,
        }

    async def _old_values(self, session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
        if not ids:
            return {}
        columns = [getattr(EmagProduct, name) for name in EMAG_FIELDS]
        result = await session.execute(select(EmagProduct.id, *columns).where(EmagProduct.id.in_(ids)))
        return {r[0]: dict(zip(EMAG_FIELDS, r[1:], strict=True)) for r in result.all()}

    async def _open_conflicts(self, session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
        conn = await session.connection()
        found: dict[uuid.UUID, list[Any]] = {}
        for r in (await conn.exec_driver_sql(OPEN_CONFLICTS_SQL, (ids,))).all():
            found.setdefault(r.product_id, []).append(r)
        return found

    async def _upsert(self, session: AsyncSession, rows: list[dict[str, Any]]) -> list[bool]:
        """One INSERT ... ON CONFLICT for the whole page. The page travels as one JSON parameter unpacked by
        jsonb_populate_recordset: a statement prepared once, instead of thousands of bound values compiled
        per page (which cost more than the database's work)."""
        conn = await session.connection()
        document = await asyncio.to_thread(lambda: canonical_json(rows).decode())
        result = await conn.exec_driver_sql(UPSERT_SQL, (document, self.sync_id, self.actor))
        written: list[Any] = list(result.all())
        return [bool(r[2]) for r in written]  # True: inserted, False: updated

    async def _quarantine(self, session: AsyncSession, bad: list[Quarantined]) -> None:
        """Say on each product's row why its payload was not stored; a product never stored gets a row that holds
        only its payload (so it shows up in GET /products?sync_status=failed)."""
        identified = {q.emag_id: q for q in bad if q.emag_id is not None}
        if not identified:
            return
        conn = await session.connection()
        placeholders = [self._placeholder(q) for q in identified.values()]
        shown = ("emag_id", "raw_emag_data", "content_hash", "sku", "name")
        marks = [{k: p[k] for k in shown} | {"reason": p["sync_issue"]} for p in placeholders]
        try:
            async with session.begin_nested():
                await conn.exec_driver_sql(
                    QUARANTINE_EXISTING_SQL, (canonical_json(marks).decode(), self.account, self.sync_id, self.actor)
                )
                await conn.exec_driver_sql(
                    QUARANTINE_NEW_SQL, (canonical_json(placeholders).decode(), self.sync_id, self.actor)
                )
        except DBAPIError as exc:  # never let the bookkeeping of a bad offer stop the good ones
            log.error("quarantine rows not written sync_id=%s account=%s error=%s", self.sync_id, self.account,
                      brief(exc))  # fmt: skip

    def _placeholder(self, item: Quarantined) -> dict[str, Any]:
        raw = item.raw if isinstance(item.raw, dict) else {"payload": item.raw}
        try:
            canonical_json(raw)
        except (TypeError, ValueError):
            raw = {"payload": "not storable as JSON"}
        sku, name = raw.get("part_number"), raw.get("name")
        return {
            "account_type": self.account,
            "emag_id": item.emag_id,
            "sku": sku if isinstance(sku, str) and len(sku) <= MAX_SKU else None,
            "name": name if isinstance(name, str) else None,
            "raw_emag_data": raw,
            "content_hash": quarantine_hash(raw),
            "sync_status": "failed",
            "sync_issue": item.reason,
        }


def _changed(old: Any, row: dict[str, Any]) -> bool:
    if old.content_hash != row["content_hash"] or old.is_missing or old.sync_status == "failed":
        return True
    # Read by id, GPSR details arrive in full; the hash treats them as their completion flag, so compare them here.
    return any(
        isinstance(row.get(name), list) and jsonable(row[name]) != jsonable(getattr(old, name)) for name in GPSR_FIELDS
    )


def _keep_richer_gpsr(row: dict[str, Any], before: dict[str, Any]) -> None:
    """A list read says only that GPSR details are complete; keep the details a read by id stored earlier."""
    for name in GPSR_FIELDS:
        if row.get(name) is True and isinstance(before.get(name), list) and before[name]:
            row[name] = before[name]


def brief(exc: BaseException) -> str:
    """One line about an unexpected error: database errors carry whole SQL statements, which help nobody."""
    cause = getattr(exc, "orig", None) or exc
    first = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first[:300]}"


async def mark_missing(
    session: AsyncSession, account: str, emag_ids: Sequence[int], sync_id: uuid.UUID, now: datetime
) -> int:
    """After a verified scan: these products of the account are gone from eMAG; they become missing (soft). The
    audit rows name who started the run (its triggered_by), as the page writer's do."""
    if not emag_ids:
        return 0
    result = await session.execute(
        text(
            """
            WITH gone AS (
                UPDATE emag_products_v2 p
                SET is_missing = true, missing_since = :now, is_active = false, sync_status = 'missing',
                    last_sync_id = :sync_id, updated_at = now()
                WHERE p.account_type = :account AND NOT p.is_missing AND p.emag_id = ANY(:ids)
                RETURNING p.id, p.emag_id
            ), audit AS (
                INSERT INTO emag_product_changes
                    (product_id, account_type, emag_id, change_type, source, sync_id, actor, changed_at)
                SELECT id, :account, emag_id, 'missing', 'emag', :sync_id,
                       COALESCE((SELECT triggered_by FROM emag_sync_logs WHERE id = :sync_id), 'sync'), :now
                FROM gone
            )
            SELECT count(*) FROM gone
            """
        ),
        {"account": account, "ids": list(emag_ids), "sync_id": sync_id, "now": now},
    )
    return int(result.scalar_one())


async def unseen_candidates(
    session: AsyncSession, account: str, scan_ids: Sequence[uuid.UUID], limit: int | None
) -> list[int]:
    """Stored, not-missing products of the account that none of `scan_ids` saw (up to `limit`)."""
    result = await session.execute(
        text(
            """
            SELECT p.emag_id FROM emag_products_v2 p
            WHERE p.account_type = :account AND NOT p.is_missing
              AND NOT EXISTS (
                  SELECT 1 FROM emag_sync_seen s
                  WHERE s.scan_id = ANY(:scan_ids) AND s.account_type = :account AND s.emag_id = p.emag_id)
            ORDER BY p.emag_id
            LIMIT :limit
            """
        ),
        {"account": account, "scan_ids": list(scan_ids), "limit": limit},
    )
    return [int(r[0]) for r in result.all()]
