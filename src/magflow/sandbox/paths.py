"""JSON paths into an offer ("offer_details.notes[0]", "stock[0].value"), read and written copy-on-write.

Copy-on-write because a cached offer may share nested lists with the generated one: an edit must never
leak into another serialisation of the same offer.
"""

from __future__ import annotations

import re
from typing import Any

Token = str | int
_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")
MISSING: Any = object()


def parse(path: str) -> tuple[Token, ...]:
    """'a.b[2].c' -> ('a', 'b', 2, 'c'); raises ValueError for anything else."""
    tokens = tuple(m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _TOKEN.finditer(path))
    if not tokens or not isinstance(tokens[0], str) or render(tokens) != path:
        raise ValueError(f"cannot read the path {path!r}; write it like offer_details.notes[0]")
    return tokens


def overlaps(one: tuple[Token, ...], other: tuple[Token, ...]) -> bool:
    """Whether writing at one path changes the value at the other (one lies inside the other)."""
    shorter = min(len(one), len(other))
    return one[:shorter] == other[:shorter]


def get(root: Any, tokens: tuple[Token, ...]) -> Any:
    """The value at the path, or MISSING."""
    node = root
    for token in tokens:
        in_object = isinstance(token, str) and isinstance(node, dict) and token in node
        in_list = isinstance(token, int) and isinstance(node, list) and token < len(node)
        if not (in_object or in_list):
            return MISSING
        node = node[token]
    return node


def put(root: dict[str, Any], tokens: tuple[Token, ...], value: Any) -> dict[str, Any]:
    """A copy of `root` with `value` at the path; missing objects and lists on the way are created,
    and a list index equal to the list's length appends. MISSING as the value removes the key/item."""
    result: dict[str, Any] = _put(root, tokens, 0, value)
    return result


def _put(node: Any, tokens: tuple[Token, ...], at: int, value: Any) -> Any:
    token, last = tokens[at], at == len(tokens) - 1
    where = render(tokens[:at]) or "the offer"
    if isinstance(token, str):
        if not isinstance(node, dict):
            raise ValueError(f"{where} is not an object, so it has no key {token!r}")
        copy = dict(node)
        if last:
            if value is MISSING:
                copy.pop(token, None)
            else:
                copy[token] = value
            return copy
        child = node.get(token)
        copy[token] = _put(_container_for(tokens[at + 1]) if child is None else child, tokens, at + 1, value)
        return copy
    if not isinstance(node, list) or token > len(node):
        raise ValueError(f"{where} has no item {token}")
    items = list(node)
    if token == len(items):
        if value is MISSING:
            return items
        items.append(_container_for(tokens[at + 1]) if not last else None)
    if last:
        if value is MISSING:
            del items[token]
        else:
            items[token] = value
    else:
        items[token] = _put(items[token], tokens, at + 1, value)
    return items


def _container_for(token: Token) -> Any:
    return [] if isinstance(token, int) else {}


def render(tokens: tuple[Token, ...]) -> str:
    out = ""
    for token in tokens:
        out += f"[{token}]" if isinstance(token, int) else f".{token}" if out else token
    return out
