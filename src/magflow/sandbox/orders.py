"""Deterministic eMAG orders and the order/read filter rules (dates, the one-month span)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from magflow.sandbox.catalog import Product
from magflow.sandbox.platforms import PLATFORMS, Platform

Order = dict[str, Any]

BUCHAREST = ZoneInfo("Europe/Bucharest")
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
FIRST_ORDER_ID = {"main": 4_000_001, "fbe": 7_000_001}
_NAMES = [
    "Ion Popescu",
    "Maria Ionescu",
    "Andreea Stănescu",
    "Ștefan Munteanu",
    "Ioana Țărână",
    "Mihai Dumitrescu",
]
_STATUS_WEIGHTS = [(4, 0.45), (1, 0.12), (2, 0.12), (3, 0.1), (0, 0.13), (5, 0.08)]


class OrderFilterError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def now_local() -> datetime:
    """eMAG timestamps are Bucharest wall-clock time without an offset."""
    return datetime.now(BUCHAREST).replace(tzinfo=None, microsecond=0)


def fmt(moment: datetime) -> str:
    return moment.strftime(DATE_FORMAT)


def _weighted(rng: random.Random) -> int:
    roll = rng.random()
    for value, weight in _STATUS_WEIGHTS:
        roll -= weight
        if roll < 0:
            return value
    return 4


def make_order(
    seed: int, account: str, index: int, order_id: int, anchor: datetime, products: list[Product],
    market: Platform = PLATFORMS["ro"], currency: str | None = None,
) -> Order:  # fmt: skip
    rng = random.Random(seed * 104_729 + index * (5 if account == "fbe" else 1))
    created = anchor - timedelta(seconds=rng.randrange(60 * 24 * 3600))
    status = _weighted(rng)
    modified = created + timedelta(seconds=rng.randrange(1, 5 * 24 * 3600)) if status != 1 else created
    modified = min(modified, anchor)
    order_type = 2 if account == "fbe" and rng.random() < 0.85 else 3
    lines = []
    for line_no, product in enumerate(rng.sample(products, min(len(products), rng.randint(1, 3)))):
        lines.append(
            {
                "id": order_id * 10 + line_no,
                "product_id": product["id"],
                "part_number": product["part_number_key"],
                "ext_part_number": product["part_number"],
                "name": product["name"],
                "quantity": rng.randint(1, 3),
                "sale_price": f"{product['sale_price']:.4f}",
                "currency": currency or market.currency,
                "vat": line_vat(market, product.get("vat_id")),
                "status": 1,
                "created": fmt(created),
                "modified": fmt(modified),
                "product_voucher_split": [],
                "serial_numbers": "",
            }
        )
    customer = rng.choice(_NAMES)
    return {
        "id": order_id,
        "status": status,
        "is_complete": 1,
        "type": order_type,
        "payment_mode_id": rng.choice([1, 1, 3, 2]),
        "detailed_payment_method": rng.choice(["Ramburs", "Card online", "eCREDIT"]),
        "delivery_mode": rng.choice(["courier", "pickup"]),
        "details": {"locker_id": None, "locker_name": None, "locker_delivery_eligible": rng.choice([0, 1])},
        "date": fmt(created),
        "modified": fmt(modified),
        "payment_status": rng.choice([0, 1]),
        "cashed_co": 0,
        "cashed_cod": 0,
        "shipping_tax": f"{rng.choice([0, 15.99, 19.99]):.2f}",
        "shipping_tax_voucher_split": [],
        "customer": {"id": rng.randrange(1, 2_000_000), "name": customer, "company": customer},
        "products": lines,
        "attachments": [],
        "vouchers": [],
        "is_storno": False,
        "reason_cancellation": 2 if status == 0 else None,
        "enforced_vendor_courier_accounts": None,
    }


def line_vat(market: Platform, vat_id: Any) -> str:
    """An order line's `vat`: the rate of the offer's vat_id as a string fraction ("0.21")."""
    return f"{dict(market.vat).get(vat_id, market.standard_rate()):.2f}"


def _parse(field: str, value: object) -> datetime:
    try:
        return datetime.strptime(str(value), DATE_FORMAT)
    except ValueError:
        raise OrderFilterError(field, f"{field} must be a date in YYYY-mm-dd HH:ii:ss format") from None


def _window(filters: dict[str, Any], prefix: str, require_both: bool) -> tuple[datetime | None, datetime | None]:
    after_key, before_key = f"{prefix}After", f"{prefix}Before"
    after = _parse(after_key, filters[after_key]) if filters.get(after_key) not in (None, "") else None
    before = _parse(before_key, filters[before_key]) if filters.get(before_key) not in (None, "") else None
    if before is not None and after is None:
        raise OrderFilterError(before_key, f"{before_key} can only be set if {after_key} is present")
    if require_both and after is not None and before is None:
        raise OrderFilterError(after_key, f"{after_key} can only be set if {before_key} is present")
    if after is not None and before is not None and _more_than_a_month(after, before):
        raise OrderFilterError(before_key, f"Maximum 1 month difference between {after_key} and {before_key}")
    return after, before


def _more_than_a_month(start: datetime, end: datetime) -> bool:
    month, year = start.month + 1, start.year
    if month == 13:
        month, year = 1, year + 1
    day = min(start.day, [31, 29 if year % 4 == 0 else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1])
    return end > start.replace(year=year, month=month, day=day)


def _as_int_set(field: str, value: Any) -> set[int]:
    items = value if isinstance(value, list) else [value]
    try:
        return {int(v) for v in items}
    except (TypeError, ValueError):
        raise OrderFilterError(field, f"{field} must be an integer or a list of integers") from None


def order_predicate(filters: dict[str, Any], *, for_count: bool) -> Any:
    """Build the order filter; raises OrderFilterError for eMAG's validation errors."""
    created = _window(filters, "created", require_both=for_count)
    modified = _window(filters, "modified", require_both=for_count)
    ids = _as_int_set("id", filters["id"]) if "id" in filters else None
    statuses = _as_int_set("status", filters["status"]) if "status" in filters else None
    # order/read documents type as defaulting to 3 (seller-fulfilled); count has no default.
    raw_type = filters.get("type", None if for_count else 3)
    types = _as_int_set("type", raw_type) if raw_type is not None else None

    def matches(order: Order) -> bool:
        if ids is not None and order["id"] not in ids:
            return False
        if statuses is not None and order["status"] not in statuses:
            return False
        if types is not None and order["type"] not in types:
            return False
        for (after, before), key in ((created, "date"), (modified, "modified")):
            if after is not None or before is not None:
                moment = datetime.strptime(order[key], DATE_FORMAT)
                if after is not None and moment < after:
                    return False
                if before is not None and moment > before:
                    return False
        return True

    return matches
