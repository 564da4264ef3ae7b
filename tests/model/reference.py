"""A plain-Python reference model of what magflow's product sync must store, written from the documented
behaviour (README, issue 12, the conflict rules in magflow.sync.conflicts' docstring), not from the engine's code.

What eMAG lists is history: every offer has a list of versions (its payload as a list read shows it, or None once
deleted), each with the time it became current. A sync run reads some of the versions current during its window;
which ones is not knowable from outside (pages are read concurrently, a change can land before or after its page).
So the model keeps, per product, the *set* of states the database may be in, applies every possible read sequence
of each run to each of them, and after every step narrows the set to the states the database agrees with. An empty
set is a bug: nothing the documented rules allow explains what is stored.

Payload semantics (cleaning, what a column can hold) are re-derived in tests/model/payloads.py. A quarantined
offer's row keeps its last good data (a new one gets a row with only the payload) and says sync_status 'failed'
with a reason naming the field.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import orjson

from magflow.text import fold

from .payloads import COLUMN_KEYS, COMPARED, UNKNOWN, Expectation, cmp, corrupted, expect, normal_raw, plain_json


@dataclass
class Version:
    index: int
    at: float
    payload: dict[str, Any] | None  # None: deleted
    active: bool  # eMAG's own status is 1 (what the status filter of an incremental sync sees)

    @cached_property
    def expectation(self) -> Expectation:
        assert self.payload is not None
        return expect(self.payload)

    @cached_property
    def corrupt_expectation(self) -> Expectation:
        assert self.payload is not None
        return expect(corrupted(self.payload))

    def expected(self, corrupt: bool) -> Expectation:
        return self.corrupt_expectation if corrupt else self.expectation


@dataclass
class Offer:
    account: str
    emag_id: int
    versions: list[Version] = field(default_factory=list)

    def at(self, t: float) -> Version | None:
        current = None
        for version in self.versions:
            if version.at <= t:
                current = version
        return current

    def during(self, start: float, end: float) -> list[Version]:
        """The versions current at some time in [start, end] that exist (not deleted)."""
        first = self.at(start)
        found = [first] if first is not None else []
        found += [v for v in self.versions if start < v.at <= end]
        return [v for v in found if v.payload is not None]

    def alive_throughout(self, start: float, end: float) -> bool:
        first = self.at(start)
        return (
            first is not None
            and first.payload is not None
            and all(v.payload is not None for v in self.versions if start < v.at <= end)
        )

    def active_throughout(self, start: float, end: float) -> bool:
        first = self.at(start)
        return first is not None and first.active and all(v.active for v in self.versions if start < v.at <= end)

    @property
    def deleted_at(self) -> float | None:
        last = self.versions[-1]
        return last.at if last.payload is None else None

    @property
    def current(self) -> Version:
        return self.versions[-1]


@dataclass(frozen=True)
class Edit:
    field: str
    base: Any  # cmp of eMAG's value the edit is measured against
    local: Any  # cmp of the local value the column holds


@dataclass(frozen=True)
class Conflict:
    field: str
    base: Any
    local: Any
    emag: Any


@dataclass(frozen=True)
class PState:
    row: bool = False
    good: int | None = None  # index of the version whose data the row holds; None: a quarantine placeholder
    failed: tuple[int, bool] | None = None  # (version, corrupt) of the latest read, when it was quarantined
    missing: bool = False
    edits: tuple[Edit, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    rewrite: bool = False  # a conflict resolved with `emag`: the next read rewrites the row whatever its payload
    read_in: int = -1  # the last run that read the product (for "a completed run read everything")

    def edit(self, name: str) -> Edit | None:
        return next((e for e in self.edits if e.field == name), None)


def _sorted_edits(edits: Iterable[Edit]) -> tuple[Edit, ...]:
    return tuple(sorted(edits, key=lambda e: e.field))


def _sorted_conflicts(conflicts: Iterable[Conflict]) -> tuple[Conflict, ...]:
    return tuple(sorted(conflicts, key=lambda c: (c.field, repr(c.local), repr(c.emag))))


def read(
    state: PState, offer: Offer, version: Version, corrupt: bool, strategy: str, run: int, by_id: bool = False
) -> list[PState]:
    """The states after a sync wrote what it read of `version` (documented rules; several under newest_wins).

    `by_id`: the read may have been one by id, whose GPSR details differ in shape from a list read's: the row
    may then be rewritten although eMAG's payload means the same."""
    expectation = version.expected(corrupt)
    if not expectation.storable:
        return [replace(state, row=True, failed=(version.index, corrupt), missing=False, read_in=run)]
    if not state.row or state.good is None:
        return [PState(row=True, good=version.index, read_in=run)]
    stored = offer.versions[state.good].expectation
    if not state.failed and not state.missing and not state.rewrite and stored.raw == expectation.raw:
        unchanged = replace(state, read_in=run)  # eMAG's payload did not change: nothing is rewritten
        return [unchanged, *_rewritten(state, version, strategy, run)] if by_id else [unchanged]
    return _rewritten(state, version, strategy, run)


def _rewritten(state: PState, version: Version, strategy: str, run: int) -> list[PState]:
    """eMAG's payload changed: its values replace the row's, except where a local edit wins (conflicts.py rules)."""
    new = version.expectation.columns
    outcomes: list[tuple[list[Edit], list[Conflict]]] = [([], [])]
    for edit in state.edits:
        choices = _edit_outcomes(edit, new[edit.field], strategy)
        outcomes = [(kept + k, opened + o) for kept, opened in outcomes for k, o in choices]
    return [
        PState(
            row=True,
            good=version.index,
            edits=_sorted_edits(kept),
            conflicts=_sorted_conflicts(_settle(state.conflicts, opened, new)),
            read_in=run,
        )
        for kept, opened in outcomes
    ]


def _edit_outcomes(edit: Edit, emag: Any, strategy: str) -> list[tuple[list[Edit], list[Conflict]]]:
    """(edits kept, conflicts opened) for one edited field: the choices the documented rules allow."""
    if emag == edit.base:
        return [([edit], [])]  # only the local side changed: it stays
    if edit.local in (edit.base, emag):
        return [([], [])]  # only eMAG changed, or both agree: eMAG's value, the edit is spent
    moved = Edit(edit.field, emag, edit.local)  # local wins; eMAG's value is the new base
    if strategy == "emag_priority":
        return [([], [])]
    if strategy == "local_priority":
        return [([moved], [])]
    if strategy == "newest_wins":  # which change is newer is estimated from read times: either may win
        return [([], []), ([moved], [])]
    return [([edit], [Conflict(edit.field, edit.base, edit.local, emag)])]


def _settle(open_now: Sequence[Conflict], opened: list[Conflict], new: Mapping[str, Any]) -> list[Conflict]:
    """Open conflicts after eMAG's new values: one stays while eMAG still shows its value; it closes when eMAG goes
    back to the base or agrees with the local value; otherwise it is replaced by one with eMAG's new value."""
    result = list(opened)
    for conflict in open_now:
        emag = new[conflict.field]
        replacement = next((c for c in result if c.field == conflict.field), None)
        if emag == conflict.emag:
            if replacement is not None:
                result.remove(replacement)
            result.append(conflict)
        elif emag in (conflict.base, conflict.local):
            continue
        elif replacement is None:
            result.append(Conflict(conflict.field, conflict.base, conflict.local, emag))
    return result


def column(state: PState, offer: Offer, name: str) -> Any:
    """The cmp value the row's column must hold."""
    edit = state.edit(name)
    if edit is not None:
        return edit.local
    if state.good is None:
        return UNKNOWN
    return offer.versions[state.good].expectation.columns.get(name, UNKNOWN)


def local_edit(state: PState, offer: Offer, name: str, value: Any) -> PState:
    """An operator's PATCH of one field (value in cmp form): the column takes it; the edit remembers eMAG's value
    (the base) until the field is edited back to it."""
    old = column(state, offer, name)
    if value == old:
        return state
    edit = state.edit(name)
    base = edit.base if edit is not None else old
    others = [e for e in state.edits if e.field != name]
    return replace(state, edits=_sorted_edits([*others, Edit(name, base, value)]))


def resolve(state: PState, offer: Offer, name: str, how: str, value: Any = None) -> PState:
    """Settle the open conflict on `name`: `emag` takes eMAG's latest synced value, `local` the local value the
    operator set (the edit's, if one is active), `value` the given one."""
    conflict = next(c for c in state.conflicts if c.field == name)
    emag_now = offer.versions[state.good].expectation.columns[name] if state.good is not None else conflict.emag
    edit = state.edit(name)
    if how == "emag":
        final = emag_now
    elif how == "local":
        final = edit.local if edit is not None else conflict.local
    else:
        final = value
    others = [e for e in state.edits if e.field != name]
    if final != emag_now:
        others.append(Edit(name, emag_now, final))
    return replace(
        state,
        edits=_sorted_edits(others),
        conflicts=tuple(c for c in state.conflicts if c is not conflict),
        rewrite=state.rewrite or how == "emag",
    )


@dataclass
class StoredRow:
    """What the database holds for one product (values as the driver returns them)."""

    columns: dict[str, Any]
    raw: Any
    sync_status: str
    sync_issue: str | None
    is_missing: bool
    is_active: bool
    main_image_url: str | None
    local_edits: dict[str, Any]
    conflicts: list[tuple[str, Any, Any, Any]]  # open ones: field, base, local, emag (JSON as stored)
    gpsr: dict[str, Any]  # payload key (manufacturer, eu_representative) -> its typed column's value
    search_text: str


def mismatches(state: PState, offer: Offer, row: StoredRow | None) -> list[str]:
    if not state.row:
        return [] if row is None else ["a row exists although no sync could have read the offer"]
    if row is None:
        return ["no row, although a sync read the offer"]
    problems: list[str] = []
    if row.is_missing != state.missing:
        problems.append(f"is_missing is {row.is_missing}, expected {state.missing}")
    if state.missing:
        expected_status = "missing"
    elif state.failed:
        expected_status = "failed"
    else:
        expected_status = "conflict" if state.conflicts else "synced"
    if row.sync_status != expected_status:
        problems.append(f"sync_status is {row.sync_status!r}, expected {expected_status!r}")
    if state.failed and not state.missing:
        version, corrupt = state.failed
        bad = offer.versions[version].expected(corrupt).bad
        names = bad | {k for k, key in COLUMN_KEYS.items() if key in bad}
        if not row.sync_issue or not any(n in row.sync_issue for n in names):
            problems.append(f"sync_issue {row.sync_issue!r} does not name a bad value ({sorted(bad)})")
    if state.good is None:
        version, corrupt = state.failed or (0, False)
        placeholder = offer.versions[version].expected(corrupt).raw
        if normal_raw(row.raw) != placeholder:
            problems.append("raw_emag_data is not the latest quarantined payload")
        return problems
    good = offer.versions[state.good].expectation
    if normal_raw(row.raw) != good.raw:
        problems.append(f"raw_emag_data is not version {state.good} of the offer as cleaned")
    if not state.failed and not state.missing and bool(row.sync_issue) != good.cleaned:
        problems.append(f"sync_issue is {row.sync_issue!r} but the payload was {'' if good.cleaned else 'not '}cleaned")
    for name in COMPARED:
        want = column(state, offer, name)
        got = cmp(name, row.columns.get(name))
        if want is not UNKNOWN and got != want:
            problems.append(f"{name} is {_short(got)}, expected {_short(want)}")
    status = column(state, offer, "status")
    if status is not UNKNOWN and row.is_active != (status == 1 and not state.missing):
        problems.append(f"is_active is {row.is_active} with status {status} (missing: {state.missing})")
    problems += _derived_mismatches(state, offer, row)
    images = column(state, offer, "images")
    if images is not UNKNOWN:
        urls = [i.get("url") for i in orjson.loads(images) if isinstance(i, dict) and i.get("url")]
        if (row.main_image_url is None) != (not urls) or (urls and row.main_image_url not in urls):
            problems.append(f"main_image_url {row.main_image_url!r} is not one of the images {urls[:3]}")
    edited = {e.field: e for e in state.edits}
    for name in set(edited) | set(row.local_edits):
        edit = edited.get(name)
        record = row.local_edits.get(name)
        if edit is not None and edit.local == edit.base and record is None:
            continue  # edited back to eMAG's value: nothing left to protect
        if edit is None or record is None:
            problems.append(f"local edit of {name}: stored {record!r}, expected {edit!r}")
        elif cmp(name, record.get("base")) != edit.base:
            problems.append(f"local edit of {name} has base {record.get('base')!r}, expected {_short(edit.base)}")
    stored_conflicts = sorted((f, cmp(f, b), cmp(f, loc), cmp(f, e)) for f, b, loc, e in row.conflicts)
    wanted = sorted((c.field, c.base, c.local, c.emag) for c in state.conflicts)
    if [repr(c) for c in stored_conflicts] != [repr(c) for c in wanted]:
        problems.append(f"open conflicts {stored_conflicts}, expected {wanted}")
    return problems


def _weight(found: list[str]) -> tuple[int, int]:
    """Closest first: the fewest mismatches no known defect (a [tag]) explains, then the fewest in all."""
    return sum(1 for m in found if not m.startswith("[")), len(found)


def _derived_mismatches(state: PState, offer: Offer, row: StoredRow) -> list[str]:
    """Columns that follow others: search_text the name the row holds (a kept local one included), GPSR details
    the payload (a list read's completion flag never replaces the details a read by id stored)."""
    problems = []
    name = column(state, offer, "name")
    if isinstance(name, str) and fold(name) not in row.search_text:
        problems.append(f"search_text {row.search_text[:60]!r} does not follow the name {name[:40]!r}")
    raw = row.raw if isinstance(row.raw, dict) else {}
    for key, stored in row.gpsr.items():
        listed = raw.get(key)
        if isinstance(listed, list) and plain_json(stored) != plain_json(listed):
            problems.append(f"GPSR {key} column {_short(stored)} is not the payload's details {_short(listed)}")
        elif not isinstance(listed, list) and bool(stored) != bool(listed):
            problems.append(f"GPSR {key} column {_short(stored)} contradicts the payload's flag {listed!r}")
    return problems


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 90 else text[:87] + "..."


@dataclass
class Run:
    index: int
    sync_id: str | None
    accounts: tuple[str, ...]
    mode: str
    strategy: str
    items_per_page: int
    max_pages: int | None = None
    include_inactive: bool = False
    ids: tuple[int, ...] = ()
    start: float = 0.0
    end: float = 0.0
    statuses: dict[str, str] = field(default_factory=dict)
    resumed_from: dict[str, str | None] = field(default_factory=dict)
    corrupt_possible: bool = False
    how: str = "normal"  # normal, cancelled, killed
    must_read: dict[str, set[int]] = field(default_factory=dict)  # per account: offers a completed run had to read
    # eMAG's count understated the listing (count_lag > 0) while a page came back empty: both sources hid offers,
    # and no client can tell, so the run owes no complete read.
    listing_hidden: bool = False
    # A known defect excuses this run's unread offers (its tag, see harness.KNOWN_DEFECTS); "" for none.
    unread_excused: str = ""

    def shape(self) -> tuple[Any, ...]:
        inactive = self.include_inactive if self.mode == "incremental" else None  # only incremental filters status
        return (self.mode, self.items_per_page, self.max_pages, inactive, self.ids)


class ModelError(AssertionError):
    """The database holds something the reference model cannot explain."""


class Model:
    """eMAG's history (fed by the test), the runs, and every product's possible database states."""

    MAX_STATES = 256

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.offers: dict[tuple[str, int], Offer] = {}
        self.states: dict[tuple[str, int], set[PState]] = {}
        self.shape_changes: dict[str, list[float]] = {"main": [], "fbe": []}
        self.runs: list[Run] = []
        self.by_sync_id: dict[str, Run] = {}
        self.resumed: set[tuple[str, str]] = set()  # (account, sync_id) already continued by a later run

    # eMAG side

    def observe_emag(self, account: str, listed: Sequence[dict[str, Any]], active: set[int], at: float) -> list[int]:
        """Record what eMAG lists now; returns the offers whose payload (or existence) changed."""
        changed = []
        with self.lock:
            now = {p["id"]: p for p in listed}
            for emag_id, payload in now.items():
                offer = self.offers.setdefault((account, emag_id), Offer(account, emag_id))
                last = offer.versions[-1] if offer.versions else None
                if last is None or last.payload != payload or last.active != (emag_id in active):
                    if last is not None and last.payload is None:
                        raise ModelError(f"offer {account}/{emag_id} came back after it was deleted")
                    offer.versions.append(Version(len(offer.versions), at, payload, emag_id in active))
                    self.states.setdefault((account, emag_id), {PState()})
                    changed.append(emag_id)
            for (acc, emag_id), offer in self.offers.items():
                if acc == account and emag_id not in now and offer.current.payload is not None:
                    offer.versions.append(Version(len(offer.versions), at, None, False))
                    changed.append(emag_id)
        return changed

    def shape_changed(self, account: str, at: float) -> None:
        """The listing's order or membership changed (offset paging may skip offers)."""
        with self.lock:
            self.shape_changes[account].append(at)

    # database side, outside syncs

    def edit(self, account: str, emag_id: int, name: str, value: Any) -> None:
        key = (account, emag_id)
        offer = self.offers[key]
        self.states[key] = {local_edit(s, offer, name, cmp(name, value)) for s in self.states[key]}

    def resolve(self, account: str, emag_id: int, name: str, how: str, value: Any = None) -> None:
        key = (account, emag_id)
        offer = self.offers[key]
        kept = {s for s in self.states[key] if any(c.field == name for c in s.conflicts)}
        if not kept:
            raise ModelError(f"{account}/{emag_id}: the model knows no open conflict on {name}")
        self.states[key] = {resolve(s, offer, name, how, cmp(name, value)) for s in kept}

    # runs

    def chain(self, run: Run, account: str) -> list[Run]:
        """The run and the runs it continued (through resumed_from), oldest first."""
        found = [run]
        while (previous := found[0].resumed_from.get(account)) is not None and previous in self.by_sync_id:
            found.insert(0, self.by_sync_id[previous])
        return found

    def add_run(self, run: Run) -> list[str]:
        """Apply a finished run to every product of its accounts; returns violations found on the way."""
        problems = self._check_resume(run)
        self.runs.append(run)
        if run.sync_id:
            self.by_sync_id[run.sync_id] = run
        for account in run.accounts:
            chain = self.chain(run, account)
            first = chain[0]
            completed = run.statuses.get(account) == "completed"
            for (acc, emag_id), offer in self.offers.items():
                if acc != account:
                    continue
                key = (acc, emag_id)
                must = completed and self._must_read(run, offer, first.start)
                if must:
                    run.must_read.setdefault(account, set()).add(emag_id)
                states = self._after_reads(self.states[key], offer, run)
                if must:
                    states = {s for s in states if s.read_in >= first.index}
                    if not states:
                        problems.append(f"{account}/{emag_id}: run {run.index} ({run.mode}) completed without it")
                        states = self._after_reads(self.states[key], offer, run)
                if completed and run.mode == "full":
                    states = self._sweep(states, offer, first.start, run.end)
                self.states[key] = self._trim(states, account)
        return problems

    def _check_resume(self, run: Run) -> list[str]:
        problems = []
        for account, previous in run.resumed_from.items():
            if previous is None:
                continue
            earlier = self.by_sync_id.get(previous)
            if earlier is None:
                continue  # a run the model did not see (cannot happen while the model drives every sync)
            if earlier.shape() != run.shape() or account not in earlier.accounts:
                problems.append(f"run {run.index} ({run.shape()}) resumed run {earlier.index} ({earlier.shape()})")
            if earlier.statuses.get(account) == "completed":
                problems.append(f"run {run.index} resumed run {earlier.index}, which had completed {account}")
            if (account, previous) in self.resumed:
                problems.append(f"run {run.index} resumed run {earlier.index} on {account}, already resumed")
            self.resumed.add((account, previous))
        return problems

    def _must_read(self, run: Run, offer: Offer, start: float) -> bool:
        if run.max_pages is not None or run.listing_hidden or run.unread_excused:
            return False
        if not offer.alive_throughout(start, run.end):
            return False
        if run.mode == "full":
            return True
        if run.mode == "selective":
            return offer.emag_id in run.ids
        if not run.include_inactive and not offer.active_throughout(start, run.end):
            return False
        # Without a verified scan, offset paging skips offers whenever the listing shifts: only a quiet listing
        # obliges an incremental run to have read everything.
        return not any(start <= t <= run.end for t in self.shape_changes[offer.account])

    def _after_reads(self, states: set[PState], offer: Offer, run: Run) -> set[PState]:
        window = offer.during(run.start, run.end)
        if run.mode == "selective" and offer.emag_id not in run.ids:
            window = []
        if run.mode == "incremental" and not run.include_inactive:
            window = [v for v in window if v.active]
        shifted = any(run.start <= t <= run.end for t in self.shape_changes[offer.account])
        by_id = run.mode == "selective" or (run.mode == "full" and shifted)
        result: set[PState] = set()
        for sequence in _sequences(window, run.corrupt_possible):
            current = set(states)
            for version, corrupt in sequence:
                current = {n for s in current for n in read(s, offer, version, corrupt, run.strategy, run.index, by_id)}
            result |= current
        return result

    def _sweep(self, states: set[PState], offer: Offer, start: float, end: float) -> set[PState]:
        deleted = offer.deleted_at
        if deleted is None or deleted > end:
            return states
        if deleted < start:
            return {replace(s, missing=True) if s.row else s for s in states}
        return states | {replace(s, missing=True) for s in states if s.row}

    def _trim(self, states: set[PState], account: str) -> set[PState]:
        # read_in only matters for runs a later run may still continue: older ones are all alike.
        open_runs = [
            self.chain(r, account)[0].index
            for r in self.runs
            if account in r.accounts
            and r.mode != "selective"
            and r.statuses.get(account) != "completed"
            and r.sync_id is not None
            and (account, r.sync_id) not in self.resumed
        ]
        floor = min(open_runs, default=len(self.runs))
        trimmed = {s if s.read_in >= floor else replace(s, read_in=-1) for s in states}
        if len(trimmed) > self.MAX_STATES:
            raise ModelError(f"the model tracks {len(trimmed)} possible states of one product; simplify the rules")
        return trimmed

    # observation

    def check(self, rows: Mapping[tuple[str, int], StoredRow]) -> list[str]:
        """Narrow every product's states to those the database agrees with; report products none explains."""
        problems = []
        for key in sorted(set(self.states) | set(rows)):
            offer = self.offers.get(key)
            row = rows.get(key)
            if offer is None:
                problems.append(f"{key[0]}/{key[1]}: stored, but eMAG never listed it")
                continue
            states = self.states[key]
            agreeing = {s for s in states if not mismatches(s, offer, row)}
            if agreeing:
                self.states[key] = agreeing
                continue
            closest = min(states, key=lambda s: _weight(mismatches(s, offer, row)))
            found = mismatches(closest, offer, row)
            tags = {m[: m.index("]") + 2] if m.startswith("[") else "" for m in found}
            tag = tags.pop() if len(tags) == 1 else ""  # a known defect only when it explains every mismatch
            detail = "; ".join(m.removeprefix(tag) for m in found)
            problems.append(f"{tag}{key[0]}/{key[1]}: {detail} (of {len(states)} possible states, the closest)")
        return problems

    def reset_states(self, rows: Mapping[tuple[str, int], StoredRow]) -> None:
        """After a violation was reported: carry on from what the database says (the closest states)."""
        for key, states in self.states.items():
            offer = self.offers.get(key)
            if offer is None:
                continue
            row = rows.get(key)
            best = min(len(mismatches(s, offer, row)) for s in states)
            self.states[key] = {s for s in states if len(mismatches(s, offer, row)) == best}

    def known_ids(self, account: str) -> list[int]:
        return sorted(i for (a, i) in self.offers if a == account)

    def active_ids(self, account: str) -> list[int]:
        return sorted(i for (a, i), o in self.offers.items() if a == account and o.current.active)

    def live_ids(self, account: str) -> list[int]:
        return sorted(i for (a, i), o in self.offers.items() if a == account and o.current.payload is not None)


def _sequences(window: list[Version], corrupt_possible: bool, limit: int = 5) -> Iterator[list[tuple[Version, bool]]]:
    """Every sequence of reads a run may have written: versions in order (a run never reads an older version
    after a newer one); each at most twice when a corrupt_product fault may have spoilt one of its reads."""
    per_version: list[list[tuple[bool, ...]]] = [
        [(), (False,), (True,), (False, True), (True, False)] if corrupt_possible else [(), (False,)] for _ in window
    ]
    for choice in itertools.product(*per_version):
        sequence = [(v, c) for v, flags in zip(window, choice, strict=True) for c in flags]
        if len(sequence) <= limit:
            yield sequence
