"""Text PostgreSQL cannot store, cleaned at the edge before an offer is parsed.

PostgreSQL's `text` and `jsonb` refuse the NUL character (U+0000) anywhere, keys included, and JSON text may carry
a lone UTF-16 surrogate (`"\\ud83d"`, half an emoji) that no UTF-8 encoder accepts. Real eMAG payloads carry both
(descriptions pasted from Word, truncated emoji). Such an offer is stored cleaned, never refused for it:
- every NUL character is removed, in values and in object keys, at any depth;
- every lone surrogate is replaced by U+FFFD (the Unicode replacement character);
- a key that its cleaning would turn into a key the object already has keeps a U+FFFD suffix, so it never
  overwrites that key's value;
- an integer outside what the JSON encoder writes (below -2**63 or from 2**64 on; typed fields check their own
  ranges) becomes its decimal text, exactly, wherever it stands, whatever else the offer holds;
- a value nested deeper than MAX_DEPTH becomes its JSON text (PostgreSQL stores it, but the encoder stops at 254).
What was cleaned, and where, is returned as notes; the sync stores them in the product's `sync_issue`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from magflow.emag.errors import emag_text

_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"
MAX_NOTES = 5
MAX_DEPTH = 200
_SMALLEST, _BEYOND = -(2**63), 2**64  # orjson reads and writes integers in this range exactly


def needs_cleaning(entry: Any) -> bool:
    """Cheap check (one serialisation): does this decoded JSON value hold a NUL or a lone surrogate?"""
    try:
        encoded = orjson.dumps(entry)
    except (TypeError, orjson.JSONEncodeError):  # surrogates, integers beyond 64 bits, nesting beyond 254
        return True
    return b"\\u0000" in encoded


def clean(entry: Any) -> tuple[Any, list[str]]:
    """`entry` with NULs removed and lone surrogates replaced, plus notes naming what was cleaned where."""
    notes: list[str] = []
    cleaned = _clean(entry, "", notes, 0)
    return cleaned, notes


def describe(notes: list[str]) -> str:
    shown = notes[:MAX_NOTES]
    more = f" and {len(notes) - MAX_NOTES} more" if len(notes) > MAX_NOTES else ""
    return "cleaned: " + "; ".join(emag_text(note, 200) for note in shown) + more


def _clean_text(text: str, path: str, notes: list[str]) -> str:
    if "\x00" in text:
        notes.append(f"removed {text.count(chr(0))} NUL character(s) from {path or 'the value'}")
        text = text.replace("\x00", "")
    if _SURROGATE.search(text):
        count = len(_SURROGATE.findall(text))
        notes.append(f"replaced {count} lone surrogate(s) in {path or 'the value'} with U+FFFD")
        text = _SURROGATE.sub(REPLACEMENT, text)
    return text


def _clean(value: Any, path: str, notes: list[str], depth: int) -> Any:
    if isinstance(value, str):
        return _clean_text(value, path, notes)
    if isinstance(value, int) and not isinstance(value, bool) and not _SMALLEST <= value < _BEYOND:
        notes.append(f"kept the integer beyond 64 bits at {path or 'the value'} as text")
        return str(value)
    if isinstance(value, list | dict) and depth >= MAX_DEPTH:
        notes.append(f"kept the value nested deeper than {MAX_DEPTH} levels at {path} as JSON text")
        return _clean_text(json.dumps(value, ensure_ascii=False), path, [])
    if isinstance(value, list):
        return [_clean(item, f"{path}[{i}]", notes, depth + 1) for i, item in enumerate(value)]
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, item in value.items():
            name = key
            if isinstance(key, str):
                name = _clean_text(key, f"a key in {path or 'the offer'}", notes)
                while name != key and (name in value or name in result):
                    notes.append(f"the cleaned key {name!r} in {path or 'the offer'} collided with an existing key")
                    name += REPLACEMENT
            result[name] = _clean(item, f"{path}.{name}" if path else str(name), notes, depth + 1)
        return result
    return value
