"""The stateful test: Hypothesis chooses what eMAG does, what the operator does and which syncs run; after every
step the database is compared with the reference model (tests/model/reference.py) and the model-free invariants
(tests/model/snapshot.py)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from magflow.sandbox.mutations import MUTABLE_FIELDS

from .harness import ACCOUNTS, Harness, SyncRequest
from .payloads import EDITABLE, STRATEGIES

ACCOUNT = st.sampled_from(ACCOUNTS)
ACCOUNTS_OR_BOTH = st.sampled_from(("main", "fbe", "both"))
STRATEGY = st.sampled_from(STRATEGIES)
PICK = st.integers(0, 10**6)
# Values eMAG may send, hostile and fixed (set_field): cleaned, quarantined, or plain. Prices that are not numbers
# go to min/max_sale_price only: the sandbox's own price mutation does arithmetic on sale_price.
HOSTILE_VALUES: tuple[tuple[str, Any], ...] = (
    ("description", "<p>Descriere lipită din Word\x00 cu NUL</p>"),
    ("name", "Cană termoizolantă \ud83d"),
    ("brand", "Casa\x00Bună"),
    ("offer_details.notes[0]", "notă\x00internă"),
    ("characteristics[1].value", "Oțel\ud83d"),
    ("content_details.meta\x00key", "valoare"),
    ("part_number_key", "K" * 70),
    ("part_number", "SKU-" + "9" * 70),
    ("currency", "RONXX"),
    ("sale_price", 10**12),
    ("recommended_price", 99999999999999.99),
    ("min_sale_price", "NaN"),
    ("max_sale_price", " 1 299.99 "),
    ("general_stock", 2**31),
    ("estimated_stock", " 12 "),
    ("warranty", " 24 "),
    ("vat_id", 2**31),
    ("category_id", 2**63),
    ("buy_button_rank", -(2**33)),
    ("stock[0].value", 2**31),
    ("description", "x" * 200_000),
    ("sale_price", 149.99),
    ("recommended_price", 0),
    ("min_sale_price", 80.5),
    ("max_sale_price", 2999.0),
    ("part_number_key", "PNKFIX001"),
    ("part_number", "SKU-FIXED-1"),
    ("currency", "RON"),
    ("general_stock", 17),
    ("vat_id", 1),
    ("category_id", 2701),
)
# (kind, route): product pages and counts (a count can fail in the middle of a full sync's verification too).
FAULTS = (
    ("500", "product_offer/read"),
    ("502_html", "product_offer/read"),
    ("504", "product_offer/read"),
    ("timeout", "product_offer/read"),
    ("reset", "product_offer/read"),
    ("captive_html", "product_offer/read"),
    ("429", "product_offer/read"),
    ("applied_then_500", "product_offer/read"),
    ("reset_mid_body", "product_offer/read"),
    ("slow", "product_offer/read"),
    ("malformed_json", "product_offer/read"),
    ("ok_without_iserror", "product_offer/read"),
    ("no_results", "product_offer/read"),
    ("empty_page", "product_offer/read"),
    ("corrupt_product", "product_offer/read"),
    ("500", "product_offer/count"),
    ("timeout", "product_offer/count"),
    ("malformed_json", "product_offer/count"),
)
MID_SCAN = ("mutate", "mutate_status", "add", "delete", "churn", "hostile_value", "turn_hostile")
DURING = st.one_of(st.none(), st.tuples(st.integers(1, 8), st.sampled_from(MID_SCAN), ACCOUNT, PICK))
ENDING = st.sampled_from(("normal", "normal", "normal", "cancel", "concurrent", "lose_lock"))


def local_value(name: str, variant: int) -> Any:
    """A value an operator types for `name` (PATCH)."""
    if name == "sale_price":
        return Decimal(f"{100 + variant}.99")
    if name == "name":
        return f"Nume local {variant}"
    if name == "description":
        return f"<p>Descriere locală {variant}</p>"
    if name == "status":
        return variant % 3
    if name == "stock":
        return [{"warehouse_id": 1, "value": variant}]
    return [{"url": f"https://local.example.ro/{variant}.jpg", "display_type": 1}]


def emag_value(name: str, variant: int) -> Any:
    """A value eMAG's side (the seller in eMAG's portal) sets for `name`, never one an operator types here."""
    if name == "sale_price":
        return Decimal(f"{500 + variant}.5")
    if name == "name":
        return f"Nume din eMAG {variant}"
    if name == "description":
        return f"<p>Descriere din eMAG {variant}</p>"
    if name == "status":
        return (variant + 1) % 3
    if name == "stock":
        return [{"warehouse_id": 1, "value": 100 + variant}]
    return [{"url": f"https://emag.example.ro/{variant}.jpg", "display_type": 1}]


def as_emag_sends(name: str, value: Any) -> Any:
    """A column value (or a local edit's JSON) written the way eMAG lists it."""
    if name == "sale_price" and value is not None:
        return float(Decimal(str(value)))
    return value


class SyncMachine(RuleBasedStateMachine):
    harness: ClassVar[Harness]

    def __init__(self) -> None:
        super().__init__()
        self.h = type(self).harness
        self.kills = 0

    @initialize(
        products=st.integers(60, 150),
        seed=st.integers(1, 2**31 - 1),
        items_per_page=st.sampled_from((10, 15, 20, 25)),
        hostile=st.sampled_from((0.0, 0.0, 0.02, 0.06)),
        hostile_seed=st.integers(0, 1000),
    )
    def fresh_world(self, products: int, seed: int, items_per_page: int, hostile: float, hostile_seed: int) -> None:
        self.h.reset(products, seed, items_per_page, hostile, hostile_seed)
        self.h.note("fresh_world", f"{products} offers per account, {items_per_page} per page, hostile {hostile}")
        self.h.sync(SyncRequest("both", "full", "emag_priority", items_per_page))

    def teardown(self) -> None:
        self.h.state.faults.clear()
        self.h.state.reads.clear()

    @invariant()
    def the_database_agrees_with_the_model(self) -> None:
        self.h.check()

    @rule(
        account=ACCOUNT,
        n=st.integers(1, 8),
        fields=st.lists(st.sampled_from(MUTABLE_FIELDS), min_size=1, max_size=3, unique=True),
    )
    def emag_changes_offers(self, account: str, n: int, fields: list[str]) -> None:
        self.h.note("emag_changes_offers", f"{account} {n} {fields}")
        self.h.state.mutate(account, n, fields)
        self.h.record(account, shape="status" in fields)

    @rule(account=ACCOUNT, n=st.integers(1, 6))
    def emag_adds_offers(self, account: str, n: int) -> None:
        self.h.note("emag_adds_offers", f"{account} {n}")
        self.h.state.add_products(account, n)
        self.h.record(account, shape=True)

    @rule(account=ACCOUNT, n=st.integers(1, 4))
    def emag_deletes_offers(self, account: str, n: int) -> None:
        if len(self.h.model.live_ids(account)) <= 40:
            self.h.note("emag_deletes_offers:skipped")
            return
        self.h.note("emag_deletes_offers", f"{account} {n}")
        self.h.state.delete_products(account, n)
        self.h.record(account, shape=True)

    @rule(account=ACCOUNT, pick=PICK, value=st.sampled_from(HOSTILE_VALUES))
    def emag_sends_a_hostile_value(self, account: str, pick: int, value: tuple[str, Any]) -> None:
        live = self.h.model.live_ids(account)
        emag_id = live[pick % len(live)]
        path, shown = value
        self.h.note("emag_sends_a_hostile_value", f"{account}/{emag_id} {path}={shown!r:.40}")
        self.h.state.set_field(account, emag_id, path, shown)
        self.h.record(account)

    @rule(rate=st.sampled_from((0.0, 0.02, 0.05, 0.1)), seed=st.integers(0, 1000))
    def emag_turns_hostile(self, rate: float, seed: int) -> None:
        self.h.note("emag_turns_hostile", f"rate {rate} seed {seed}")
        self.h.state.set_hostile(rate, seed)
        for account in ACCOUNTS:
            self.h.record(account)

    @rule(lag=st.sampled_from((0, 0, 1, 3, -1)))
    def emag_count_lags(self, lag: int) -> None:
        self.h.note("emag_count_lags", str(lag))
        self.h.state.set_count_lag(lag)
        self.h.quirk_changed()

    @rule(order=st.sampled_from(("id", "modified")))
    def emag_listing_order(self, order: str) -> None:
        self.h.note("emag_listing_order", order)
        self.h.state.set_listing_order(order)
        for account in ACCOUNTS:
            self.h.record(account, shape=True)

    @rule(
        fault=st.sampled_from(FAULTS),
        count=st.integers(1, 3),
        page=st.sampled_from((None, None, 1, 2, "last", "last active")),
        account=ACCOUNT,
    )
    def emag_fails_requests(self, fault: tuple[str, str], count: int, page: int | str | None, account: str) -> None:
        """The next requests of the route fail (the next sync meets them; what it did not meet is then cleared).
        "last": the last page eMAG's count announces for the account's whole listing, or its active offers'."""
        kind, route = fault
        if isinstance(page, str):
            listed = self.h.model.live_ids(account) if page == "last" else self.h.model.active_ids(account)
            counted = max(0, len(listed) - self.h.state.quirks.count_lag)
            page = max(1, -(-counted // self.h.items_per_page))
        page = page if route == "product_offer/read" else None
        self.h.note("emag_fails_requests", f"{kind}@{route} x{count} page {page}")
        self.h.state.faults.inject(kind, count=count, page=page, timeout_seconds=3.0, route=route, delay_seconds=0.3)
        self.h.faults_armed = True

    @rule(pick=PICK, how=st.sampled_from(("agrees", "reverts", "conflicts", "other_field")), variant=st.integers(0, 40))
    def emag_touches_an_edited_offer(self, pick: int, how: str, variant: int) -> None:
        """eMAG changes an offer edited locally: to the local value (they agree), back to the edit's base (it
        reverts), to a third value (a conflict), or in another field only (the edit must survive)."""
        live = self.h.live()  # eMAG can only change offers it still lists
        edited = [
            (a, i, name, e) for a, i, _, edits in self.h.rows_for_edit() if (a, i) in live for name, e in edits.items()
        ]
        if not edited:
            self.h.note("emag_touches_an_edited_offer:skipped")
            return
        account, emag_id, name, edit = edited[pick % len(edited)]
        if how == "agrees":
            value = as_emag_sends(name, self.h.column(account, emag_id, name))
        elif how == "reverts":
            value = as_emag_sends(name, edit.get("base"))
        elif how == "conflicts":
            value = as_emag_sends(name, emag_value(name, variant))
        else:
            name = "name" if name != "name" else "description"
            value = emag_value(name, variant)
        self.h.note("emag_touches_an_edited_offer", f"{account}/{emag_id} {how}: {name}={value!r:.40}")
        self.h.state.set_field(account, emag_id, name, value)
        self.h.record(account, shape=name == "status")

    @rule(pick=PICK, name=st.sampled_from(EDITABLE), variant=st.integers(0, 40), back=st.booleans())
    def operator_edits(self, pick: int, name: str, variant: int, back: bool) -> None:
        rows = self.h.rows_for_edit()
        if not rows:
            self.h.note("operator_edits:skipped")
            return
        account, emag_id, product_id, edits = rows[pick % len(rows)]
        value = local_value(name, variant)
        if back and name in edits:
            value = edits[name]["base"]  # edited back to eMAG's value
            value = Decimal(str(value)) if name == "sale_price" and value is not None else value
        self.h.note("operator_edits", f"{account}/{emag_id} {name}={value!r:.40}")
        self.h.edit(account, emag_id, product_id, name, value)

    @rule(pick=PICK, how=st.sampled_from(("emag", "local", "value")), variant=st.integers(0, 40))
    def operator_resolves_a_conflict(self, pick: int, how: str, variant: int) -> None:
        conflicts = self.h.open_conflicts()
        if not conflicts:
            self.h.note("operator_resolves_a_conflict:skipped")
            return
        conflict = conflicts[pick % len(conflicts)]
        value = local_value(conflict[3], variant) if how == "value" else None
        self.h.note("operator_resolves_a_conflict", f"{conflict[1]}/{conflict[2]} {conflict[3]} {how}")
        self.h.resolve(conflict, how, value)

    @rule(pick=PICK, name=st.sampled_from(EDITABLE), variant=st.integers(0, 40), strategy=STRATEGY)
    def operator_and_emag_disagree(self, pick: int, name: str, variant: int, strategy: str) -> None:
        """The same field edited here and changed on eMAG, then a selective sync of that offer under a strategy."""
        live = self.h.live()
        rows = [r for r in self.h.rows_for_edit() if (r[0], r[1]) in live]
        if not rows:
            self.h.note("operator_and_emag_disagree:skipped")
            return
        account, emag_id, product_id, _ = rows[pick % len(rows)]
        self.h.note("operator_and_emag_disagree", f"{account}/{emag_id} {name} {strategy}")
        self.h.edit(account, emag_id, product_id, name, local_value(name, variant))
        self.h.state.set_field(account, emag_id, name, as_emag_sends(name, emag_value(name, variant)))
        self.h.record(account, shape=name == "status")
        self._sync(SyncRequest(account, "selective", strategy, self.h.items_per_page, ids=(emag_id,)), None)

    @rule(
        pick=PICK,
        name=st.sampled_from(EDITABLE),
        variant=st.integers(0, 40),
        how=st.sampled_from(("emag", "local", "value")),
    )
    def a_conflict_is_opened_and_settled(self, pick: int, name: str, variant: int, how: str) -> None:
        """Both sides change a field, a manual sync opens the conflict, and the operator settles it."""
        self.operator_and_emag_disagree(pick, name, variant, "manual")
        opened = [c for c in self.h.open_conflicts() if c[3] == name]
        if opened:
            conflict = opened[-1]  # the newest: the one this rule opened
            value = local_value(name, variant + 1) if how == "value" else None
            self.h.note("a_conflict_is_opened_and_settled", f"{conflict[1]}/{conflict[2]} {name} {how}")
            self.h.resolve(conflict, how, value)

    @rule(accounts=ACCOUNTS_OR_BOTH, strategy=STRATEGY, during=DURING, ending=ENDING, cancel_after=st.integers(1, 4))
    def full_sync(self, accounts: str, strategy: str, during: Any, ending: str, cancel_after: int) -> None:
        request = self._request(accounts, "full", strategy, ending, cancel_after)
        self._sync(request, during)

    @rule(
        accounts=ACCOUNTS_OR_BOTH,
        strategy=STRATEGY,
        max_pages=st.sampled_from((None, None, 1, 2, 3)),
        include_inactive=st.booleans(),
        during=DURING,
        ending=ENDING,
        cancel_after=st.integers(1, 4),
    )
    def incremental_sync(
        self,
        accounts: str,
        strategy: str,
        max_pages: int | None,
        include_inactive: bool,
        during: Any,
        ending: str,
        cancel_after: int,
    ) -> None:
        request = self._request(accounts, "incremental", strategy, ending, cancel_after)
        request.max_pages, request.include_inactive = max_pages, include_inactive
        self._sync(request, during)

    @rule(account=ACCOUNT, strategy=STRATEGY, picks=st.lists(PICK, min_size=1, max_size=5), gone=st.booleans())
    def selective_sync(self, account: str, strategy: str, picks: list[int], gone: bool) -> None:
        live = self.h.model.live_ids(account)
        ids = {live[p % len(live)] for p in picks}
        deleted = sorted(set(self.h.model.known_ids(account)) - set(live))
        if gone and deleted:
            ids.add(deleted[picks[0] % len(deleted)])
        request = SyncRequest(account, "selective", strategy, self.h.items_per_page, ids=tuple(sorted(ids)))
        self._sync(request, None)

    @precondition(lambda self: self.kills == 0)
    @rule(
        account=ACCOUNTS_OR_BOTH,
        mode=st.sampled_from(("full", "incremental")),
        strategy=STRATEGY,
        pages=st.integers(1, 4),
    )
    def sync_killed_with_sigkill(self, account: str, mode: str, strategy: str, pages: int) -> None:
        self.kills += 1
        self.h.note("sync_killed_with_sigkill", f"{account} {mode} {strategy} after {pages} page(s)")
        self.h.kill_a_sync(account, mode, strategy, pages)

    def _request(self, accounts: str, mode: str, strategy: str, ending: str, cancel_after: int) -> SyncRequest:
        request = SyncRequest(accounts, mode, strategy, self.h.items_per_page)
        if ending == "cancel":
            request.cancel_after = cancel_after
        if ending == "lose_lock":
            request.lose_lock_after = cancel_after
        request.try_concurrent = ending == "concurrent"
        return request

    def _sync(self, request: SyncRequest, during: Any) -> None:
        detail = f"{request.accounts} {request.strategy}"
        if request.mode == "incremental":
            detail += f" max_pages={request.max_pages} inactive={request.include_inactive}"
        if request.ids:
            detail += f" ids={list(request.ids)}"
        if request.cancel_after is not None:
            detail += f" cancel after {request.cancel_after} page(s)"
        if request.try_concurrent:
            detail += " + a second sync meanwhile"
        if request.lose_lock_after is not None:
            detail += f" + its lock connection killed after {request.lose_lock_after} page(s)"
        if during is not None:
            pages, what, account, pick = during
            self.h.state.after_reads(pages, self._mid_scan(what, account, pick), account=account)
            detail += f" + {what} on {account} after {pages} page(s)"
        self.h.note(f"{request.mode}_sync", detail)
        result = self.h.sync(request)
        statuses = {a: r["status"] for a, r in result["accounts"].items()}
        self.h.counts[f"{request.mode}_sync->{'/'.join(sorted(set(statuses.values())))}"] += 1
        self.h.log(f"           -> {result['status']} {statuses}")

    def _mid_scan(self, what: str, account: str, pick: int) -> Callable[[], object]:
        """An eMAG-side change that runs in the sandbox between two page reads of the running scan."""
        state, harness = self.h.state, self.h

        def change() -> object:
            harness.log(f"           mid-scan: {what} on {account} now")
            if what == "mutate":
                state.mutate(account, 1 + pick % 6, ("sale_price", "name"))
            elif what == "mutate_status":
                state.mutate(account, 1 + pick % 4, ("status",))
            elif what == "add":
                state.add_products(account, 1 + pick % 5)
            elif what == "delete":
                if len(harness.model.live_ids(account)) > 40:
                    state.delete_products(account, 1 + pick % 3)
            elif what == "churn":  # as many added as deleted: eMAG's count does not move
                n = min(5 + pick % 26, len(harness.model.live_ids(account)) - 40)
                if n > 0:
                    state.delete_products(account, n)
                    state.add_products(account, n)
            elif what == "hostile_value":
                live = harness.model.live_ids(account)
                path, value = HOSTILE_VALUES[pick % len(HOSTILE_VALUES)]
                state.set_field(account, live[pick % len(live)], path, value)
            else:
                state.set_hostile(0.05, pick % 1000)
                for other in ACCOUNTS:
                    if other != account:
                        harness.record(other)
            harness.record(account, shape=what in ("mutate_status", "add", "delete", "churn"))
            return None

        return change
