"""Request bodies in the three styles eMAG clients use (see magflow.emag.config.RequestFormat)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import orjson

from magflow.emag.config import RequestFormat

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def encode(data: Mapping[str, Any] | None, style: RequestFormat) -> tuple[bytes, str]:
    """The body and its Content-Type for `data` (None: a call that takes no parameters)."""
    if style == "form":
        return ("&".join(_form_pairs("data", dict(data))).encode() if data else b""), FORM
    if data is None:
        return b"{}", JSON
    if style == "json-data":
        return orjson.dumps({"data": dict(data)}), JSON
    return orjson.dumps(dict(data)), JSON


def _form_pairs(prefix: str, value: Any) -> Iterator[str]:
    """PHP's bracket notation: data[currentPage]=2, data[status][]=1, data[filter][id]=5.

    A list of objects is indexed (data[stock][0][warehouse_id]=1&data[stock][0][value]=3): PHP starts a new
    element at every `[]`, so `data[stock][][warehouse_id]=1&data[stock][][value]=3` would read as two objects."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _form_pairs(f"{prefix}[{key}]", item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if isinstance(item, Mapping | list | tuple):
                yield from _form_pairs(f"{prefix}[{index}]", item)
            else:
                yield f"{quote(prefix + '[]', safe='[]')}={quote(_scalar(item), safe='')}"
    else:
        yield f"{quote(prefix, safe='[]')}={quote(_scalar(value), safe='')}"


def _scalar(value: Any) -> str:
    """Form values are text: PHP reads true/false as "1"/"0" and null as an empty string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
