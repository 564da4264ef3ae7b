"""Text PostgreSQL cannot store, cleaned at the edge before an offer is parsed.

PostgreSQL's `text` and `jsonb` refuse the NUL character (U+0000) anywhere, keys included, and JSON text may carry
a lone UTF-16 surrogate (`"\\ud83d"`, half an emoji) that no UTF-8 encoder accepts. Real eMAG payloads carry both
(descriptions pasted from Word, truncated emoji). Such an offer is stored cleaned, never refused for it:
- every NUL character is removed, in values and in object keys, at any depth;
- every lone surrogate is replaced by U+FFFD (the Unicode replacement character).
What was cleaned, and where, is returned as notes; the sync stores them in the product's `sync_issue`.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"
MAX_NOTES = 5


def needs_cleaning(entry: Any) -> bool:
    """Cheap check (one serialisation): does this decoded JSON value hold a NUL or a lone surrogate?"""
    try:
        encoded = orjson.dumps(entry)
    except TypeError:  # orjson refuses str with surrogates ("str is not valid UTF-8")
        return True
    except orjson.JSONEncodeError:
        return True
    return b"\\u0000" in encoded


def clean(entry: Any) -> tuple[Any, list[str]]:
    """`entry` with NULs removed and lone surrogates replaced, plus notes naming what was cleaned where."""
    notes: list[str] = []
    cleaned = _clean(entry, "", notes)
    return cleaned, notes


def describe(notes: list[str]) -> str:
    shown = notes[:MAX_NOTES]
    more = f" and {len(notes) - MAX_NOTES} more" if len(notes) > MAX_NOTES else ""
    return "cleaned: " + "; ".join(shown) + more


def _clean_text(text: str, path: str, notes: list[str]) -> str:
    if "\x00" in text:
        notes.append(f"removed {text.count(chr(0))} NUL character(s) from {path or 'the value'}")
        text = text.replace("\x00", "")
    if _SURROGATE.search(text):
        count = len(_SURROGATE.findall(text))
        notes.append(f"replaced {count} lone surrogate(s) in {path or 'the value'} with U+FFFD")
        text = _SURROGATE.sub(REPLACEMENT, text)
    return text


def _clean(value: Any, path: str, notes: list[str]) -> Any:
    if isinstance(value, str):
        return _clean_text(value, path, notes)
    if isinstance(value, list):
        return [_clean(item, f"{path}[{i}]", notes) for i, item in enumerate(value)]
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, item in value.items():
            name = _clean_text(key, f"a key in {path or 'the offer'}", notes) if isinstance(key, str) else key
            result[name] = _clean(item, f"{path}.{name}" if path else str(name), notes)
        return result
    return value
