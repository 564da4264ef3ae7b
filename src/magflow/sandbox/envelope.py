"""eMAG's answer envelope, `{"isError": ..., "messages": [...], "results": ...}`, written as the switches say.

Product pages arrive as cached offer bytes and are stitched, never re-serialised: the envelope costs a few
concatenations on the fast path.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any

import orjson

from magflow.sandbox import hostile
from magflow.sandbox.shapes import empty_objects_as_lists
from magflow.sandbox.wire import Wire

JSON_TYPE = b"application/json"
HTML_TYPE = b"text/html"
# Faults that spoil the envelope of an answer that is otherwise given (magflow.sandbox.faults).
SPOILERS = frozenset({"malformed_json", "corrupt_product", "ok_without_iserror", "empty_page", "no_results"})


@dataclass
class Reply:
    """One answer before it is written. `parts` (pre-serialised list items) or `results`; `raw` for answers that
    are not an eMAG envelope (404 Invalid URL, HTTP 400 validation errors)."""

    status: int = 200
    results: Any = field(default_factory=list)
    parts: list[bytes] | None = None
    is_error: bool = False
    messages: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    code: int = 0  # the `code` of each message when messages are objects
    raw: bytes | None = None
    content_type: bytes = JSON_TYPE


def ok(results: Any = None, parts: list[bytes] | None = None) -> Reply:
    return Reply(results=[] if results is None else results, parts=parts)


def refused(status: int, code: int, *messages: str, errors: list[dict[str, Any]] | None = None) -> Reply:
    return Reply(status=status, is_error=True, messages=list(messages), errors=errors or [], code=code)


def render(reply: Reply, wire: Wire, php_empty: bool = False, spoil: str | None = None) -> bytes:
    """The body bytes of `reply` (spoiled as the fault `spoil` asks, if any), joined once: a page of offers is
    copied a single time."""
    if reply.raw is not None:
        return reply.raw
    out: list[bytes] = [b"{"]
    if wire.iserror != "missing" and spoil != "ok_without_iserror":
        flag = b"true" if reply.is_error else b"false"
        out.append(b'"isError":' + (b'"' + flag + b'"' if wire.iserror == "string" else flag) + b",")
    out += (b'"messages":', _messages(reply, wire))
    if spoil != "no_results":
        out.append(b',"results":')
        if spoil == "empty_page":
            out.append(b"[]")
        else:
            _results(out, reply, wire, php_empty)
    if wire.errors_key:
        out += (b',"errors":', orjson.dumps(reply.errors))
    out.append(b"}")
    body = b"".join(out)
    if spoil == "malformed_json":
        body = body[: max(1, len(body) // 2)]
    return body


def _messages(reply: Reply, wire: Wire) -> bytes:
    if not reply.messages:
        return b"[]"
    if wire.message_objects:
        return orjson.dumps([{"message": m, "code": reply.code} for m in reply.messages])
    return orjson.dumps(reply.messages)


def _results(out: list[bytes], reply: Reply, wire: Wire, php_empty: bool) -> None:
    parts = reply.parts
    if parts is not None:
        if not parts:
            out.append(b"[]")
            return
        keyed = wire.results_object
        out.append(b"{" if keyed else b"[")
        for i, part in enumerate(parts):
            if i:
                out.append(b",")
            if keyed:
                out.append(b'"%d":' % i)
            out.append(part)
        out.append(b"}" if keyed else b"]")
        return
    results = reply.results
    if wire.results_object and isinstance(results, list) and results:
        results = {str(i): item for i, item in enumerate(results)}
    if php_empty:
        results = empty_objects_as_lists(results)
    out.append(hostile.dumps(results))


def corrupt(parts: list[bytes]) -> list[bytes]:
    """One offer in the middle of the page with `sale_price: "abc"` and a `stock` that is not a list."""
    if not parts:
        return parts
    middle = len(parts) // 2
    product = hostile.loads(parts[middle])
    product["sale_price"] = "abc"
    product["stock"] = "n/a"
    return [*parts[:middle], hostile.dumps(product), *parts[middle + 1 :]]


def compressed(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=1)
