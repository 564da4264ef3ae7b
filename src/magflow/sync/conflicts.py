"""The conflict rules for locally edited fields, as a pure function of one product's values.

For each locally edited field we keep the last synced eMAG value (the base). When eMAG's content changes:
- eMAG's value equals the base: only the local side changed, the local value stays.
- the local value equals the base (edited back): only eMAG changed, eMAG's value is taken.
- both differ from the base: a conflict, settled by the strategy:
  emag_priority takes eMAG's value; local_priority keeps the local one; newest_wins dates eMAG's change halfway
  between the last read that still showed the base and this read (the change happened somewhere in between) and
  keeps whichever is later; manual keeps the local value and opens a conflict record.
Values are compared by what they mean: amounts by value (199.9900 equals 199.99), the rest as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from magflow.sync.enums import ConflictResolutionStrategy
from magflow.sync.mapping import comparable, jsonable


@dataclass
class FieldConflict:
    field: str
    base: Any
    local: Any
    emag: Any


@dataclass
class Resolution:
    """What to store: column values that differ from eMAG's, the remaining edits, and what happened."""

    keep_local: dict[str, Any] = field(default_factory=dict)
    local_edits: dict[str, Any] = field(default_factory=dict)
    open_conflicts: list[FieldConflict] = field(default_factory=list)
    resolved: list[tuple[FieldConflict, str]] = field(default_factory=list)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def resolve(
    emag_row: dict[str, Any],
    current: dict[str, Any],
    local_edits: dict[str, Any],
    strategy: ConflictResolutionStrategy,
    observed_at: datetime,
    confirmed_at: datetime | None = None,
) -> Resolution:
    """`emag_row`: the new eMAG values; `current`: the stored column values; `local_edits`: the edit records;
    `confirmed_at`: the last read before this one, which still showed eMAG's base values."""
    result = Resolution()
    for name, edit in local_edits.items():
        if name not in emag_row:
            continue
        base = comparable(name, edit.get("base"))
        local_value = current.get(name)
        emag_value = emag_row[name]
        emag_json, local_json = jsonable(emag_value), jsonable(local_value)
        emag_changed = comparable(name, emag_value) != base
        local_changed = comparable(name, local_value) != base
        if not emag_changed:
            result.keep_local[name] = local_value
            result.local_edits[name] = edit
            continue
        if not local_changed or comparable(name, local_value) == comparable(name, emag_value):
            continue  # take eMAG's value; the edit is spent
        conflict = FieldConflict(field=name, base=jsonable(edit.get("base")), local=local_json, emag=emag_json)
        winner = _winner(strategy, edit, observed_at, confirmed_at)
        if winner == "local":
            result.keep_local[name] = local_value
            # eMAG's value is now the last synced one: the edit stays, measured against it.
            result.local_edits[name] = {**edit, "base": emag_json}
            result.resolved.append((conflict, "local"))
        elif winner == "emag":
            result.resolved.append((conflict, "emag"))
        else:
            result.keep_local[name] = local_value
            result.local_edits[name] = edit
            result.open_conflicts.append(conflict)
    return result


def emag_change_estimate(observed_at: datetime, confirmed_at: datetime | None) -> datetime:
    """When eMAG's value probably changed: halfway between the last read that still showed the old value and the
    read that first showed the new one (eMAG gives products no modification time)."""
    if confirmed_at is None or confirmed_at >= observed_at:
        return observed_at
    return confirmed_at + (observed_at - confirmed_at) / 2


def _winner(
    strategy: ConflictResolutionStrategy, edit: dict[str, Any], observed_at: datetime, confirmed_at: datetime | None
) -> str:
    if strategy is ConflictResolutionStrategy.EMAG_PRIORITY:
        return "emag"
    if strategy is ConflictResolutionStrategy.LOCAL_PRIORITY:
        return "local"
    if strategy is ConflictResolutionStrategy.NEWEST_WINS:
        edited_at = _parse_time(edit.get("edited_at"))
        changed_at = emag_change_estimate(observed_at, confirmed_at)
        return "local" if edited_at is not None and edited_at > changed_at else "emag"
    return "manual"
