"""Local edits of product fields and the manual conflict queue (what PATCH /products/{id} and the conflict
endpoints call). The session is committed by the caller."""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from magflow.emag import PayloadError, ProductOffer
from magflow.models import EmagProduct, EmagProductChange, EmagProductConflict
from magflow.sync.mapping import EDITABLE_FIELDS, MappingError, comparable, derive, jsonable, offer_to_row
from magflow.sync.runs import utcnow

MONEY = {"sale_price", "recommended_price", "min_sale_price", "max_sale_price"}
INTEGERS = {"vat_id", "warranty", "status", "general_stock", "category_id"}
LISTS = {"stock", "handling_time", "images", "characteristics", "ean"}
TEXTS = {"name", "brand", "description"}


class LocalEditError(ValueError):
    """An edit that cannot be applied; the message names the field and what it accepts."""


class NotFoundError(LookupError):
    pass


def coerce(name: str, value: Any) -> Any:
    if name not in EDITABLE_FIELDS:
        allowed = ", ".join(sorted(EDITABLE_FIELDS))
        raise LocalEditError(f"field {name!r} cannot be edited locally; editable fields: {allowed}")
    if value is None:
        return None
    if name in MONEY:
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise LocalEditError(f"{name} must be a decimal amount such as 199.99 (got {value!r})") from None
        if amount < 0 or not amount.is_finite():
            raise LocalEditError(f"{name} must be zero or more (got {value!r})")
        return amount.quantize(Decimal("0.0001"))
    if name in INTEGERS:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise LocalEditError(f"{name} must be a whole number (got {value!r})")
        try:
            number = int(value)
        except ValueError:
            raise LocalEditError(f"{name} must be a whole number (got {value!r})") from None
        if name == "status" and number not in (0, 1, 2):
            raise LocalEditError(f"status must be 0 (inactive), 1 (active) or 2 (end of life) (got {number})")
        return number
    if name in LISTS:
        if not isinstance(value, list):
            raise LocalEditError(f"{name} must be a list (got {type(value).__name__})")
        return value
    if not isinstance(value, str):
        raise LocalEditError(f"{name} must be text (got {type(value).__name__})")
    return value


def _audit(
    product: EmagProduct, change_type: str, name: str | None, old: Any, new: Any, source: str, actor: str
) -> dict[str, Any]:
    return {
        "product_id": product.id,
        "account_type": product.account_type,
        "emag_id": product.emag_id,
        "change_type": change_type,
        "field": name,
        "old_value": old,
        "new_value": new,
        "source": source,
        "actor": actor,
    }


async def get_product(session: AsyncSession, product_id: uuid.UUID) -> EmagProduct:
    product = await session.get(EmagProduct, product_id, with_for_update=True)
    if product is None:
        raise NotFoundError(f"product {product_id} does not exist")
    return product


async def apply_local_edit(
    session: AsyncSession,
    product_id: uuid.UUID,
    changes: dict[str, Any],
    custom_fields: dict[str, Any] | None,
    actor: str,
) -> EmagProduct:
    """Edit fields locally. Each edited field remembers its last synced eMAG value (the base) and who edited it
    when; `custom_fields` are merged (a null value removes a key) and are never touched by a sync."""
    coerced = {name: coerce(name, value) for name, value in changes.items()}
    product = await get_product(session, product_id)
    now = utcnow().isoformat()
    edits = dict(product.local_edits or {})
    audit: list[dict[str, Any]] = []
    for name, value in coerced.items():
        old = getattr(product, name)
        old_json, new_json = jsonable(old), jsonable(value)
        if comparable(name, old) == comparable(name, value):
            continue
        base = edits[name]["base"] if name in edits else old_json
        if comparable(name, value) == comparable(name, base):
            edits.pop(name, None)  # back to eMAG's value: nothing local left to protect
        else:
            edits[name] = {"base": base, "edited_at": now, "edited_by": actor}
        setattr(product, name, value)
        audit.append(_audit(product, "local_edit", name, old_json, new_json, "local", actor))
    product.local_edits = edits
    if custom_fields:
        merged = dict(product.custom_fields or {})
        for key, value in custom_fields.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        if merged != product.custom_fields:
            audit.append(
                _audit(product, "custom_fields", "custom_fields", product.custom_fields, merged, "local", actor)
            )
            product.custom_fields = merged
    _rederive(product)
    product.updated_at = utcnow()
    if audit:
        await session.execute(insert(EmagProductChange).values(audit))
    return product


def _rederive(product: EmagProduct) -> None:
    """is_active, search_text and main_image_url follow the values the row now holds, local or eMAG's."""
    derived = derive({"status": product.status, "images": product.images, "sku": product.sku, "name": product.name})
    product.is_active = derived["is_active"] and not product.is_missing
    product.search_text = derived["search_text"]
    product.main_image_url = derived["main_image_url"]


def _current_emag_value(product: EmagProduct, name: str, fallback: Any) -> Any:
    """eMAG's value of `name` as of the last sync, from the stored payload (the column may hold a local value)."""
    try:
        row = offer_to_row(product.account_type, ProductOffer.from_payload(product.raw_emag_data or {}), {})
    except (PayloadError, MappingError):
        return fallback  # a quarantined payload: the value the conflict recorded is the best known
    return row.get(name)


async def resolve_conflict(
    session: AsyncSession, conflict_id: int, resolution: str, value: Any, actor: str
) -> EmagProductConflict:
    """Settle an open conflict: `emag` takes eMAG's value, `local` keeps the local one, `value` sets another."""
    if resolution not in ("emag", "local", "value"):
        raise LocalEditError(f"resolution must be emag, local or value (got {resolution!r})")
    conflict = await session.get(EmagProductConflict, conflict_id, with_for_update=True)
    if conflict is None:
        raise NotFoundError(f"conflict {conflict_id} does not exist")
    if conflict.status != "open":
        raise LocalEditError(f"conflict {conflict_id} is already {conflict.status}")
    product = await get_product(session, conflict.product_id)
    name = conflict.field
    edits = dict(product.local_edits or {})
    old = jsonable(getattr(product, name))
    # eMAG may have changed again since the conflict was opened: settle against its latest synced value.
    emag_now = _current_emag_value(product, name, coerce(name, conflict.emag_value))
    if resolution == "emag":
        final = emag_now
        edits.pop(name, None)
        # The next sync rewrites the row from eMAG whatever its payload, so nothing stale outlives the choice.
        product.content_hash = ""
    else:
        # "local" is the value the operator edited (recorded with the conflict), not whatever the column holds now:
        # a sync under another strategy may have put eMAG's value there meanwhile.
        final = coerce(name, conflict.local_value if resolution == "local" else value)
        if comparable(name, final) == comparable(name, emag_now):
            edits.pop(name, None)
        else:
            # eMAG's value is now the last synced one; the local value is measured against it from here on.
            edits[name] = {"base": jsonable(emag_now), "edited_at": utcnow().isoformat(), "edited_by": actor}
    setattr(product, name, final)
    product.local_edits = edits
    _rederive(product)
    conflict.status = "resolved"
    conflict.resolution = resolution
    conflict.resolved_value = jsonable(final)
    conflict.resolved_at = utcnow()
    conflict.resolved_by = actor
    await session.execute(
        insert(EmagProductChange).values(
            [
                _audit(
                    product,
                    "conflict_resolved",
                    name,
                    old,
                    jsonable(final),
                    "conflict_resolution:manual",
                    actor,
                )
            ]
        )
    )
    await session.flush()
    still_open = await session.scalar(
        select(func.count())
        .select_from(EmagProductConflict)
        .where(EmagProductConflict.product_id == product.id, EmagProductConflict.status == "open")
    )
    if not still_open and product.sync_status == "conflict":
        # A quarantined product stays 'failed' (its stored payload is stale) until a sync stores a good one.
        product.sync_status = "missing" if product.is_missing else "synced"
    return conflict
