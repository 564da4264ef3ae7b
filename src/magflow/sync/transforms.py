"""Transformation hooks: a configured function that adds computed fields to a product before it is stored.

Set `MAGFLOW_TRANSFORM_HOOK=package.module:function`. The function receives the parsed offer and a
`TransformContext` and returns a mapping of JSON-serialisable values, stored in `computed_fields`.

The hook is trusted code: magflow imports it and runs it in every process that syncs, with the process's
rights and settings (eMAG passwords, database URL). It is imported from `sys.path`, which for
`python -m magflow` includes the working directory: install hooks as a package, run the `magflow` command.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from magflow.config import SettingsError
from magflow.emag import ProductOffer


@dataclass(frozen=True)
class TransformContext:
    account: str
    vat_rates: Mapping[int, Decimal] = field(default_factory=dict)


Transform = Callable[[ProductOffer, TransformContext], Mapping[str, Any]]


class TransformHookError(SettingsError, ValueError):
    """The hook cannot be used; a SettingsError, so the CLI shows it as one line and exits 2."""


def load_transform(path: str | None) -> Transform | None:
    if not path:
        return None
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        func = getattr(module, attr)
    except Exception as exc:  # any failure of the hook's own module (a SyntaxError, its imports, its code)
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise TransformHookError(
            f"MAGFLOW_TRANSFORM_HOOK={path!r} cannot be loaded ({type(exc).__name__}: {reason}); "
            "give it as package.module:function, importable by magflow"
        ) from None
    if not callable(func):
        raise TransformHookError(
            f"MAGFLOW_TRANSFORM_HOOK={path!r} is not a function; name one as package.module:function"
        )
    return func  # type: ignore[no-any-return]


def price_with_vat(offer: ProductOffer, context: TransformContext) -> Mapping[str, Any]:
    """Example hook: the sale price including VAT, from the account's `vat/read` rates."""
    if offer.sale_price is None or offer.vat_id is None:
        return {}
    rate = context.vat_rates.get(offer.vat_id)
    if rate is None:
        return {}
    gross = (offer.sale_price * (1 + rate)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return {"sale_price_with_vat": str(gross), "vat_rate": str(rate)}
