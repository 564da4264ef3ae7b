"""Writing one page of offers: set-based, a few statements per page whatever its size.

A product whose content hash did not change costs no row write. New and changed products go in one
INSERT ... ON CONFLICT DO UPDATE; their audit rows in one INSERT; open conflicts in one INSERT.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from magflow.emag import ProductOffer, RejectedOffer
from magflow.models import EmagProduct, EmagProductConflict
from magflow.sync.conflicts import resolve
from magflow.sync.enums import ConflictResolutionStrategy
from magflow.sync.mapping import EMAG_FIELDS, canonical_json, jsonable, offer_to_row
from magflow.sync.transforms import Transform, TransformContext

SYNC_OWNED = (*EMAG_FIELDS, "raw_emag_data", "computed_fields", "content_hash", "search_text")
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
    SELECT id, account_type, emag_id, 'created', 'emag', $2::uuid, 'sync' FROM written WHERE inserted
)
SELECT emag_id, id, inserted FROM written
"""
SEEN_SQL = """
INSERT INTO emag_sync_seen (scan_id, account_type, emag_id)
SELECT $1::uuid, $2::varchar, unnest($3::bigint[]) ON CONFLICT DO NOTHING
"""
EXISTING_SQL = """
SELECT id, emag_id, content_hash, is_missing, local_edits FROM emag_products_v2
WHERE account_type = $1::varchar AND emag_id = ANY($2::bigint[])
ORDER BY emag_id FOR UPDATE
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

    @property
    def processed(self) -> int:
        return self.created + self.updated + self.unchanged + self.failed


@dataclass
class PageWriter:
    account: str
    sync_id: uuid.UUID
    strategy: ConflictResolutionStrategy
    transform: Transform | None = None
    transform_context: TransformContext | None = None

    def _rows(
        self, offers: Sequence[ProductOffer], rejected: Sequence[RejectedOffer], outcome: PageOutcome
    ) -> dict[int, dict[str, Any]]:
        for bad in rejected:
            outcome.failed += 1
            outcome.errors.append(
                {
                    "account": self.account,
                    "emag_id": bad.offer_id,
                    "reason": f"malformed product: {bad.reason}",
                }
            )
        rows: dict[int, dict[str, Any]] = {}
        context = self.transform_context or TransformContext(account=self.account)
        for offer in offers:
            try:
                computed = dict(self.transform(offer, context)) if self.transform else {}
                rows[offer.id] = offer_to_row(self.account, offer, computed)
            except Exception as exc:  # a bad offer, or the operator's transformation hook failing on it
                outcome.failed += 1
                outcome.errors.append({"account": self.account, "emag_id": offer.id, "reason": str(exc)})
        return rows

    async def write(
        self,
        session: AsyncSession,
        offers: Sequence[ProductOffer],
        rejected: Sequence[RejectedOffer],
        observed_at: datetime,
        scan_id: uuid.UUID | None = None,
    ) -> PageOutcome:
        outcome = PageOutcome()
        # Mapping and hashing a page is CPU work; in a thread the event loop keeps serving timers (the rate
        # budget's slots) and the other account's I/O meanwhile.
        rows = await asyncio.to_thread(self._rows, offers, rejected, outcome)
        # Every offer eMAG listed counts as seen, stored or quarantined: a quarantined offer still exists.
        seen_ids = {o.id for o in offers} | {r.offer_id for r in rejected if r.offer_id is not None}
        conn = await session.connection()
        if scan_id is not None and seen_ids:
            await conn.exec_driver_sql(SEEN_SQL, (scan_id, self.account, list(seen_ids)))
        if not rows:
            return outcome

        existing = {r.emag_id: r for r in (await conn.exec_driver_sql(EXISTING_SQL, (self.account, list(rows)))).all()}
        new_ids = [i for i in rows if i not in existing]
        changed_ids = [
            i for i, old in existing.items() if old.content_hash != rows[i]["content_hash"] or old.is_missing
        ]
        outcome.unchanged = len(existing) - len(changed_ids)
        if not new_ids and not changed_ids:
            return outcome

        old_values = await self._old_values(session, [existing[i].id for i in changed_ids])
        audit: list[dict[str, Any]] = []
        conflicts: list[dict[str, Any]] = []
        to_write: list[dict[str, Any]] = []
        for emag_id in new_ids:
            row = rows[emag_id]
            to_write.append(self._full_row(row, {}, observed_at))
        for emag_id in changed_ids:
            row = dict(rows[emag_id])
            old = existing[emag_id]
            before = old_values[old.id]
            edits: dict[str, Any] = {}
            if old.local_edits:
                res = resolve(row, before, dict(old.local_edits), self.strategy, observed_at)
                row.update(res.keep_local)
                edits = res.local_edits
                for conflict, winner in res.resolved:
                    audit.append(
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
                for conflict in res.open_conflicts:
                    conflicts.append(
                        {
                            "product_id": old.id,
                            "account_type": self.account,
                            "emag_id": emag_id,
                            "field": conflict.field,
                            "base_value": conflict.base,
                            "local_value": conflict.local,
                            "emag_value": conflict.emag,
                            "sync_id": self.sync_id,
                        }
                    )
            if old.is_missing:
                audit.append(self._audit(old.id, emag_id, "restored", None, None, None, "emag"))
            for name in EMAG_FIELDS:
                old_json, new_json = jsonable(before.get(name)), jsonable(row.get(name))
                if old_json != new_json:
                    audit.append(self._audit(old.id, emag_id, "updated", name, old_json, new_json, "emag"))
            full = self._full_row(row, edits, observed_at)
            full["sync_status"] = "conflict" if any(c["product_id"] == old.id for c in conflicts) else "synced"
            to_write.append(full)

        written = await self._upsert(session, to_write)
        outcome.created = sum(written)  # their "created" audit rows are written by the upsert statement itself
        outcome.updated = len(written) - outcome.created
        if conflicts:
            conflicts = await self._new_conflicts(session, conflicts)
            if conflicts:
                await session.execute(insert(EmagProductConflict).values(conflicts))
        outcome.conflicts = len(conflicts)
        if audit:
            await conn.exec_driver_sql(AUDIT_SQL, (canonical_json(audit).decode(),))
        return outcome

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
            "actor": "sync",
        }

    async def _old_values(self, session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
        if not ids:
            return {}
        columns = [getattr(EmagProduct, name) for name in EMAG_FIELDS]
        result = await session.execute(select(EmagProduct.id, *columns).where(EmagProduct.id.in_(ids)))
        return {r[0]: dict(zip(EMAG_FIELDS, r[1:], strict=True)) for r in result.all()}

    async def _upsert(self, session: AsyncSession, rows: list[dict[str, Any]]) -> list[bool]:
        """One INSERT ... ON CONFLICT for the whole page. The page travels as one JSON parameter unpacked by
        jsonb_populate_recordset: a statement prepared once, instead of thousands of bound values compiled
        per page (which cost more than the database's work)."""
        conn = await session.connection()
        document = await asyncio.to_thread(lambda: canonical_json(rows).decode())
        result = await conn.exec_driver_sql(UPSERT_SQL, (document, self.sync_id))
        written: list[Any] = list(result.all())
        return [bool(r[2]) for r in written]  # True: inserted, False: updated

    async def _new_conflicts(self, session: AsyncSession, conflicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Skip conflicts already open with the same eMAG value (a later sync must not pile up duplicates)."""
        product_ids = list({c["product_id"] for c in conflicts})
        open_rows = (
            await session.execute(
                select(EmagProductConflict.product_id, EmagProductConflict.field, EmagProductConflict.emag_value).where(
                    EmagProductConflict.product_id.in_(product_ids), EmagProductConflict.status == "open"
                )
            )
        ).all()
        known = {(r[0], r[1], canonical_json(r[2])) for r in open_rows}
        return [c for c in conflicts if (c["product_id"], c["field"], canonical_json(c["emag_value"])) not in known]


async def mark_missing(
    session: AsyncSession, account: str, scan_id: uuid.UUID, sync_id: uuid.UUID, now: datetime
) -> int:
    """After a verified complete scan: products of the account the scan did not see become missing (soft)."""
    result = await session.execute(
        text(
            """
            WITH gone AS (
                UPDATE emag_products_v2 p
                SET is_missing = true, missing_since = :now, is_active = false, sync_status = 'missing',
                    last_sync_id = :sync_id, updated_at = now()
                WHERE p.account_type = :account AND NOT p.is_missing
                  AND NOT EXISTS (
                      SELECT 1 FROM emag_sync_seen s
                      WHERE s.scan_id = :scan_id AND s.account_type = :account AND s.emag_id = p.emag_id)
                RETURNING p.id, p.emag_id
            ), audit AS (
                INSERT INTO emag_product_changes
                    (product_id, account_type, emag_id, change_type, source, sync_id, actor, changed_at)
                SELECT id, :account, emag_id, 'missing', 'emag', :sync_id, 'sync', :now FROM gone
            )
            SELECT count(*) FROM gone
            """
        ),
        {"account": account, "scan_id": scan_id, "sync_id": sync_id, "now": now},
    )
    return int(result.scalar_one())


async def unseen_candidates(session: AsyncSession, account: str, scan_id: uuid.UUID, limit: int) -> list[int]:
    result = await session.execute(
        text(
            """
            SELECT p.emag_id FROM emag_products_v2 p
            WHERE p.account_type = :account AND NOT p.is_missing
              AND NOT EXISTS (
                  SELECT 1 FROM emag_sync_seen s
                  WHERE s.scan_id = :scan_id AND s.account_type = :account AND s.emag_id = p.emag_id)
            LIMIT :limit
            """
        ),
        {"account": account, "scan_id": scan_id, "limit": limit},
    )
    return [int(r[0]) for r in result.all()]
