"""The conflict rules for locally edited fields, as a pure function of one product's values.

For each locally edited field we keep the last synced eMAG value (the base). When eMAG's content changes:
- eMAG's value equals the base: only the local side changed, the local value stays.
- the local value equals the base (edited back): only eMAG changed, eMAG's value is taken.
- both differ from the base: a conflict, settled by the strategy:
  emag_priority takes eMAG's value; local_priority keeps the local one; newest_wins compares the local edit time
  with the time this sync observed eMAG's value; manual keeps the local value and opens a conflict record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from magflow.sync.enums import ConflictResolutionStrategy
from magflow.sync.mapping import jsonable


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
) -> Resolution:
    """`emag_row`: the new eMAG values; `current`: the stored column values; `local_edits`: the edit records."""
    result = Resolution()
    for name, edit in local_edits.items():
        if name not in emag_row:
            continue
        base = edit.get("base")
        local_value = current.get(name)
        emag_value = emag_row[name]
        emag_json, local_json = jsonable(emag_value), jsonable(local_value)
        emag_changed = emag_json != base
        local_changed = local_json != base
        if not emag_changed:
            result.keep_local[name] = local_value
            result.local_edits[name] = edit
            continue
        if not local_changed or local_json == emag_json:
            continue  # take eMAG's value; the edit is spent
        conflict = FieldConflict(field=name, base=base, local=local_json, emag=emag_json)
        winner = _winner(strategy, edit, observed_at)
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


def _winner(strategy: ConflictResolutionStrategy, edit: dict[str, Any], observed_at: datetime) -> str:
    if strategy is ConflictResolutionStrategy.EMAG_PRIORITY:
        return "emag"
    if strategy is ConflictResolutionStrategy.LOCAL_PRIORITY:
        return "local"
    if strategy is ConflictResolutionStrategy.NEWEST_WINS:
        edited_at = _parse_time(edit.get("edited_at"))
        return "local" if edited_at is not None and edited_at > observed_at else "emag"
    return "manual"
