"""eMAG's answer envelope as it really arrives, read leniently where that loses nothing.

eMAG documents `{"isError": false, "messages": [], "results": ...}`. Seen or plausible besides (the issue
"The envelope as eMAG really sends it"): `isError` as the string "false" or as 0/1, an `errors` list beside
`messages`, messages as objects `{message, code}` or as an object keyed by position, 429s with
`X-RateLimit-*` headers and no `Retry-After`, and a 200 that is an HTML page from a proxy, not from eMAG.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

_TRUE_FALSE = {"false": False, "0": False, "true": True, "1": True}
# X-RateLimit-Remaining-3second: 0 means the window is spent; waiting it out is the shortest safe retry.
_SPENT_WINDOW = re.compile(r"^x-ratelimit-remaining-(\d*)(second|minute)s?$")
PROXY_ADVICE = (
    "an HTML page answered instead of eMAG's JSON, so a proxy or captive portal may be answering for "
    "eMAG: check this server's HTTP(S)_PROXY settings and that the base URL's host resolves to eMAG"
)


# An integer literal of 20 digits or more (outside a string: after ':', '[' or ',').
_BIG_INTEGER = re.compile(rb"[:\[,]\s*-?\d{20,}\s*[,}\]]")


def is_error(value: Any) -> bool | None:
    """eMAG's `isError` read as a flag: false/"false"/0/"0" and true/"true"/1/"1"; None when it is anything
    else (null, "maybe"), which like a missing key means the call was probably not interpreted."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {0: False, 1: True}.get(value)
    if isinstance(value, str):
        return _TRUE_FALSE.get(value.strip().lower())
    return None


def loads(content: bytes) -> Any:
    """The JSON body, or None when there is none or it is not JSON."""
    if not content.strip():
        return None
    if not _BIG_INTEGER.search(content):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    # orjson reads an integer beyond 64 bits as a float (silently inexact); the standard library keeps it exact,
    # and the offer holding it gets it as text when it is cleaned.
    # orjson refuses a lone surrogate escape ("\\ud83d", half an emoji) that PHP's json_encode sends; the standard
    # library reads it, and the offer holding it is cleaned when it is parsed (magflow.emag.cleaning).
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return None


def messages(payload: Any) -> list[str]:
    """`messages` (and a lone `message`) as text: strings, objects `{message, code}`, or an object of them."""
    if not isinstance(payload, dict):
        return []
    raw = payload.get("messages")
    if isinstance(raw, dict):
        raw = [raw] if "message" in raw or "text" in raw else list(raw.values())
    items = raw if isinstance(raw, list) else [raw] if raw else []
    if payload.get("message"):
        items = [*items, payload["message"]]
    return [_text(item) for item in items if item not in (None, "", [], {})]


def field_errors(payload: Any, redact: Callable[[str], str]) -> list[tuple[str | None, str]]:
    """The `errors` list beside `messages`: `(field, text)` pairs, field None when eMAG names none."""
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if isinstance(errors, dict):
        errors = [errors] if "message" in errors else list(errors.values())
    found: list[tuple[str | None, str]] = []
    for entry in errors if isinstance(errors, list) else []:
        if isinstance(entry, dict):
            field_name = entry.get("field")
            found.append((str(field_name) if field_name else None, redact(_text(entry))))
        elif entry not in (None, ""):
            found.append((None, redact(str(entry))))
    return found


def _text(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    text = item.get("message") or item.get("text")
    if not isinstance(text, str) or not text:
        text = orjson.dumps({k: v for k, v in item.items() if k != "field"}, default=str).decode()
    code = item.get("code")
    return f"{text} (code {code})" if code not in (None, "") else text


def is_html(response: httpx.Response) -> bool:
    return "html" in response.headers.get("content-type", "").lower() or response.content.lstrip()[:1] == b"<"


def describe_body(response: httpx.Response, payload: Any) -> str:
    if not response.content.strip():
        return " with an empty body"
    if is_html(response):
        return " with an HTML body"
    if payload is None:
        return " with a body that is not valid JSON"
    return ""


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def spent_window(response: httpx.Response) -> float | None:
    """Seconds until a rate window that eMAG says is spent (`X-RateLimit-Remaining-3second: 0`) resets."""
    for name, value in response.headers.items():
        match = _SPENT_WINDOW.match(name)
        if match and value.strip() == "0":
            return int(match.group(1) or 1) * (60 if match.group(2) == "minute" else 1)
    return None


def rate_limit_headers(response: httpx.Response) -> dict[str, str]:
    """The `X-RateLimit-*` headers, named as eMAG documents them (`X-RateLimit-Limit-3second`), for the deep
    connection check and the client's stats."""
    return {_canonical(name): value for name, value in response.headers.items() if name.startswith("x-ratelimit")}


def _canonical(name: str) -> str:
    return "-".join("RateLimit" if part == "ratelimit" else part[:1].upper() + part[1:] for part in name.split("-"))


def clock_offset(response: httpx.Response, received_at: float) -> float | None:
    """Seconds eMAG's clock (its `Date` header) runs ahead of this machine's (negative: behind).

    `Date` has whole seconds, truncated: half a second is added so an exact clock averages zero."""
    value = response.headers.get("date")
    if not value:
        return None
    try:
        stamp = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return round(stamp + 0.5 - received_at, 1)
