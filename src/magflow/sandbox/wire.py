"""How the sandbox reads a request body and shapes its answers: the protocol switches.

eMAG's document says the POST data has one key, `data`, and eMAG's PHP plugins send it form-encoded
(`data[currentPage]=2`); production JSON clients put the keys at the top level. A server reads one of those and
ignores what it does not read, so a client sending the wrong style silently gets page 1 with 100 items. The
`body_style` switch picks what the sandbox reads:

- "top_level" (default): the keys of a JSON object; a `data` wrapper is an unknown key and is ignored.
- "data": only the keys inside a JSON `data` wrapper; top-level keys are ignored.
- "lenient": the wrapper if there is one, else the top-level keys (the sandbox before issue 13).
- "form": only form bodies; a JSON body is ignored.

A form body (`application/x-www-form-urlencoded`) is read PHP-style in every style: `data[k]=v` and `k=v`,
`data[k][]=v` lists, `data[k][j]=v` nesting, every value a string — it is the documented form.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import parse_qsl

import orjson

BodyStyle = Literal["top_level", "data", "lenient", "form"]
ErrorStyle = Literal["iserror200", "http400"]
PagingOverflow = Literal["cap", "error"]
IsErrorShape = Literal["bool", "string", "missing"]
BODY_STYLES: tuple[BodyStyle, ...] = ("top_level", "data", "lenient", "form")
# The other spelling (`--body-style accept-all|top-level|wrapped|form`) and the client's format names.
BODY_STYLE_ALIASES: dict[str, BodyStyle] = {
    "top-level": "top_level", "json": "top_level", "wrapped": "data", "json-data": "data", "accept-all": "lenient",
}  # fmt: skip
ERROR_STYLES: tuple[ErrorStyle, ...] = ("iserror200", "http400")
PAGING_OVERFLOWS: tuple[PagingOverflow, ...] = ("cap", "error")
ISERROR_SHAPES: tuple[IsErrorShape, ...] = ("bool", "string", "missing")
MAX_INPUT_VARS = 4000  # eMAG: "at most 4000 input variables per request"; PHP drops the rest


class InvalidContent(ValueError):
    """The body cannot be read at all (eMAG: HTTP 400 {"message": "Invalid content"})."""


@dataclass(frozen=True)
class Wire:
    """The protocol switches (see the module docstring for body_style).

    - error_style: "iserror200" (a rejected filter is HTTP 200 `{"isError": true, "messages": [...]}`, as the
      classic api-3 routes answer) or "http400" (HTTP 400 `{"message": "Validation errors in your request",
      "errors": [...]}`).
    - paging_overflow: "cap" (itemsPerPage above 100 silently serves 100, so "a short page is the last page"
      misleads a client asking for more) or "error" (a validation error).
    - iserror: "bool" (`"isError": false`), "string" (`"isError": "false"`) or "missing" (no key on any answer;
      a careful client never believes such an answer — the fault `ok_without_iserror` does it for N answers).
    - errors_key: an `errors` list beside `messages` (`[]` on success), as newer api-3 routes send.
    - message_objects: `messages` as `[{"message": ..., "code": ...}]` instead of strings.
    - results_object: list results as an object keyed by position (`{"0": ..., "1": ...}`), as PHP's
      json_encode writes an array whose keys are not 0..n-1; an empty one is `[]`.
    - gzip: every API answer gzip-compressed (`Content-Encoding: gzip`), whatever the request accepted."""

    body_style: BodyStyle = "top_level"
    error_style: ErrorStyle = "iserror200"
    paging_overflow: PagingOverflow = "cap"
    iserror: IsErrorShape = "bool"
    errors_key: bool = True
    message_objects: bool = False
    results_object: bool = False
    gzip: bool = False

    def checked(self) -> Wire:
        style = BODY_STYLE_ALIASES.get(self.body_style, self.body_style)
        for name, value, allowed in (
            ("body_style", style, BODY_STYLES + tuple(BODY_STYLE_ALIASES)),
            ("error_style", self.error_style, ERROR_STYLES),
            ("paging_overflow", self.paging_overflow, PAGING_OVERFLOWS),
            ("iserror", self.iserror, ISERROR_SHAPES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {value!r}")
        return replace(self, body_style=style)


def read_filters(body: bytes, content_type: bytes, style: BodyStyle) -> dict[str, Any]:
    """The request's parameters as a server reading `style` sees them; raises InvalidContent."""
    if content_type[:33].lower() == b"application/x-www-form-urlencoded":
        return _form_filters(body)
    if style == "form" or not body.strip():
        return {}
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidContent("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise InvalidContent("the body is not a JSON object")
    if style == "top_level":
        return payload if "data" not in payload else {k: v for k, v in payload.items() if k != "data"}
    wrapped = payload.get("data")
    if style == "data":
        return wrapped if isinstance(wrapped, dict) else {}
    filters = payload.get("data", payload)  # lenient
    if not isinstance(filters, dict):
        raise InvalidContent("data is not an object")
    return filters


def _form_filters(body: bytes) -> dict[str, Any]:
    """`k=v` and `data[k]=v` (the wrapper's keys win), as PHP's $_POST holds them."""
    fields = parse_php_form(body)
    wrapped = fields.pop("data", None)
    if isinstance(wrapped, dict):
        fields.update(wrapped)
    return fields


def parse_php_form(body: bytes) -> dict[str, Any]:
    """A form body as PHP parses it: `a[b][]=1&a[b][]=2&c=3` -> {"a": {"b": ["1", "2"]}, "c": "3"}. Every value is
    a string; a later plain value replaces an earlier one; objects keyed 0..n-1 become lists."""
    pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="replace")
    root: dict[str, Any] = {}
    for name, value in pairs[:MAX_INPUT_VARS]:
        base, _, rest = name.partition("[")
        keys = [base, *(part.rstrip("]") for part in rest.split("["))] if rest else [base]
        if keys[0]:
            _put(root, keys, value)
    result: dict[str, Any] = _listify(root)
    return result


def _put(node: dict[str, Any], keys: list[str], value: str) -> None:
    for position, key in enumerate(keys):
        last = position == len(keys) - 1
        if key == "":  # `[]`: append
            key = str(sum(1 for k in node if k.isdigit()))
        if last:
            node[key] = value
            return
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    items = {k: _listify(v) for k, v in value.items()}
    if items and list(items) == [str(i) for i in range(len(items))]:
        return list(items.values())
    return items
