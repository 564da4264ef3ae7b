"""Verifying a full scan and marking what is gone, without ever marking a live offer missing.

Offset paging skips offers while the catalogue changes, and balanced deletions and additions leave eMAG's count
unchanged, so neither "the count did not move" nor "we read as many as it counts" proves a scan saw everything.
After each pass:
1. the pass is *stable* when the count at its start and end agree, no offer turned up twice (rows shifted under
   the scan) and it read at least as many offers as eMAG counts; otherwise another pass (at most MAX_PASSES);
2. the stored offers the stable pass did not see are the candidates. When they are few (at most the confirmation
   budget: CONFIRM_LIMIT, or one request per page of the pass when that is more) each is asked for by id: the
   ones still there are stored, the others are missing;
3. when they are more, those the previous pass saw as well are asked for by id (if they fit the budget; if not,
   another pass), and so is a random sample of those neither pass saw. Only when every offer asked for is really
   gone are the offers unseen by both passes (and the confirmed ones) marked missing; any offer found alive is
   evidence of skipping, and the run scans again or ends partial with nothing marked.
The guard then refuses a sweep that would leave fewer than `guard_ratio` of the stored offers (a suspended account
or a filter gone wrong must not wipe the catalogue).
"""

from __future__ import annotations

import logging
import random
import uuid
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from magflow.emag import EmagClient
from magflow.models import EmagProduct, EmagSyncProgress, EmagSyncSeen
from magflow.sync.progress import StatsDelta, record_page, start_pass
from magflow.sync.results import AccountResult
from magflow.sync.runs import utcnow
from magflow.sync.writer import PageWriter, mark_missing, unseen_candidates

log = logging.getLogger("magflow.sync")

MAX_PASSES = 3
CONFIRM_LIMIT = 25
PAGE_READS_KEPT_DAYS = 7


class _Rescan(Exception):
    """Another pass is needed; the message says why, for when no pass is left."""


class FullScanVerifier:
    """The end-of-pass half of AccountRun (which provides these attributes)."""

    account: str
    sync_id: uuid.UUID
    client: EmagClient
    writer: PageWriter
    guard_ratio: float
    result: AccountResult
    _stats: StatsDelta

    async def _guarded_commit(self, session: AsyncSession) -> None:
        raise NotImplementedError

    def _partial(self, message: str, scan_finished: bool = True) -> None:
        raise NotImplementedError

    async def _seen_in_pass(self, session: AsyncSession, scan_id: uuid.UUID) -> int:
        query = select(func.count()).select_from(EmagSyncSeen).where(EmagSyncSeen.scan_id == scan_id)
        return int(await session.scalar(query) or 0)

    async def _verify_and_sweep(
        self, session: AsyncSession, progress: EmagSyncProgress, checkpoint: dict[str, Any]
    ) -> bool:
        """After a full pass: True when done (swept, or refused with a reason); False to scan once more."""
        scan_id = uuid.UUID(checkpoint["scan_id"])
        count_end = (await self.client.count_products({})).items
        # The seen-set was filled during this scan: without fresh statistics the planner expects one row and
        # compares every product with every seen id (quadratic; seconds at 10,000 products).
        await session.execute(text("ANALYZE emag_sync_seen"))
        seen = await self._seen_in_pass(session, scan_id) + int(checkpoint.get("pass_anonymous", 0))
        try:
            if checkpoint.get("count_at_start") != count_end or checkpoint.get("pass_repeated") or seen < count_end:
                raise _Rescan(f"the catalogue kept changing during the scan (eMAG count {count_end}, read {seen})")
            if await self._refused_by_guard(session, scan_id):
                return await self._done(session, checkpoint, [])
            gone = await self._gone(session, checkpoint, pages=max(1, int(progress.current_page or 0)))
        except _Rescan as why:
            return await self._another_pass(session, progress, checkpoint, count_end, str(why))
        return await self._done(session, checkpoint, gone)

    async def _gone(self, session: AsyncSession, checkpoint: dict[str, Any], pages: int) -> list[int]:
        """The offers to mark missing after a stable pass (see the module docstring), or _Rescan."""
        scan_ids = [uuid.UUID(s) for s in checkpoint["scan_ids"]]
        budget = max(CONFIRM_LIMIT, pages)
        unseen = await unseen_candidates(session, self.account, scan_ids[-1:], None)
        if len(unseen) <= budget:
            return await self._confirm_gone(session, scan_ids[-1], unseen)
        if len(scan_ids) < 2:
            raise _Rescan(f"{len(unseen)} stored offers went unseen; a second pass tells skipped from deleted")
        unseen_twice = set(await unseen_candidates(session, self.account, scan_ids[-2:], None))
        seen_before = [i for i in unseen if i not in unseen_twice]
        if len(seen_before) > budget:
            raise _Rescan(f"{len(seen_before)} offers seen by one pass and not by the next")
        sample = random.sample(sorted(unseen_twice), min(len(unseen_twice), budget - len(seen_before), CONFIRM_LIMIT))
        asked = seen_before + sample
        confirmed = await self._confirm_gone(session, scan_ids[-1], asked)
        if len(confirmed) < len(asked):
            raise _Rescan(
                f"{len(asked) - len(confirmed)} of {len(asked)} unseen offers asked for by id still exist: "
                "paging skipped them"
            )
        return sorted(unseen_twice | set(confirmed))

    async def _confirm_gone(self, session: AsyncSession, scan_id: uuid.UUID, candidates: list[int]) -> list[int]:
        """Ask eMAG for each candidate by id; store those that still exist (as seen). Returns the gone ones."""
        gone: list[int] = []
        for emag_id in candidates:
            page = await self.client.read_products_page(1, 1, {"id": emag_id})
            if page.offers or page.rejected:
                now = utcnow()
                outcome = await self.writer.write(session, page.offers, page.rejected, now, scan_id)
                self.result.add(outcome)
                await record_page(session, self.sync_id, outcome, self._stats.take(self.client.stats), now)
                await self._guarded_commit(session)
            else:
                gone.append(emag_id)
        return gone

    async def _refused_by_guard(self, session: AsyncSession, scan_id: uuid.UUID) -> bool:
        seen = await self._seen_in_pass(session, scan_id)
        known_query = select(func.count()).select_from(EmagProduct)
        known_query = known_query.where(EmagProduct.account_type == self.account, EmagProduct.is_missing.is_(False))
        known = int(await session.scalar(known_query) or 0)
        if known and seen < self.guard_ratio * known:
            self._partial(
                f"missing-product sweep refused: eMAG listed {seen} offers but {known} are stored, "
                f"below the {self.guard_ratio:.0%} guard; nothing was marked missing. "
                "Check the account on eMAG (status filters, suspended offers), then run a full sync again"
            )
            return True
        return False

    async def _done(self, session: AsyncSession, checkpoint: dict[str, Any], gone: list[int]) -> bool:
        if self.result.status != "partial":
            self.result.missing = await mark_missing(session, self.account, gone, self.sync_id, utcnow())
            if self.result.missing:
                log.warning(
                    "products missing sync_id=%s account=%s count=%d", self.sync_id, self.account, self.result.missing
                )
            self.result.status = "completed"
            await self._prune_page_reads(session)
            await self._guarded_commit(session)
        await self._drop_seen(session, checkpoint)
        return True

    async def _another_pass(
        self,
        session: AsyncSession,
        progress: EmagSyncProgress,
        checkpoint: dict[str, Any],
        count_end: int,
        why: str,
    ) -> bool:
        if checkpoint["pass"] >= MAX_PASSES:
            self._partial(
                f"after {MAX_PASSES} passes, {why}; nothing was marked missing. Run a full sync again at a quieter time"
            )
            await self._drop_seen(session, checkpoint)
            return True
        log.info("sync pass sync_id=%s account=%s pass=%d reason=%s", self.sync_id, self.account,
                 checkpoint["pass"] + 1, why)  # fmt: skip
        scan_id = str(uuid.uuid4())
        dropped = [uuid.UUID(s) for s in checkpoint["scan_ids"][:-1]]
        checkpoint.update(
            {
                "pass": checkpoint["pass"] + 1,
                "scan_id": scan_id,
                # The previous pass's seen-set is kept: the next pass's verdict compares the two.
                "scan_ids": [*checkpoint["scan_ids"][-1:], scan_id],
                "next_page": 1,
                "count_at_start": count_end,
                "pass_repeated": 0,
                "pass_anonymous": 0,
            }
        )
        if dropped:  # seen-sets of passes before the last two: no verdict needs them any more
            await session.execute(delete(EmagSyncSeen).where(EmagSyncSeen.scan_id.in_(dropped)))
        start_pass(progress, checkpoint)
        await self._guarded_commit(session)
        return False

    async def _prune_page_reads(self, session: AsyncSession) -> None:
        await session.execute(
            text(
                "DELETE FROM emag_page_reads WHERE account_type = :account "
                "AND read_at < now() - make_interval(days => :days)"
            ),
            {"account": self.account, "days": PAGE_READS_KEPT_DAYS},
        )

    async def _drop_seen(self, session: AsyncSession, checkpoint: dict[str, Any]) -> None:
        scan_ids = [uuid.UUID(s) for s in checkpoint.get("scan_ids", [checkpoint["scan_id"]])]
        await session.execute(delete(EmagSyncSeen).where(EmagSyncSeen.scan_id.in_(scan_ids)))
        await session.commit()
