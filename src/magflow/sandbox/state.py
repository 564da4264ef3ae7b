"""The sandbox's mutable world: both accounts' catalogues and orders, limits, faults, IP whitelist."""

from __future__ import annotations

import bisect
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from magflow.sandbox import catalog, orders
from magflow.sandbox.catalog import Product
from magflow.sandbox.faults import FaultInjector
from magflow.sandbox.orders import Order
from magflow.sandbox.ratelimit import Limit, RateLimiter

SANDBOX_ACCOUNTS: dict[str, tuple[str, str]] = {
    "main": ("sandbox-main", "sandbox-main-pass"),
    "fbe": ("sandbox-fbe", "sandbox-fbe-pass"),
}
MUTABLE_FIELDS = ("sale_price", "stock", "name", "status")


@dataclass
class AccountData:
    """One account's offers, generated lazily on first read so 100,000-product sandboxes start at once."""

    name: str
    seed: int
    shared: int
    stride: int
    ids: list[int] = field(default_factory=list)  # ascending; the read order
    products: dict[int, Product] = field(default_factory=dict)  # generated so far, with mutations applied
    list_bytes: dict[int, bytes] = field(default_factory=dict)  # cached list-read serialisation per id
    next_index: int = 0
    orders: dict[int, Order] = field(default_factory=dict)
    next_order_index: int = 0

    def product(self, product_id: int) -> Product:
        product = self.products.get(product_id)
        if product is None:
            index = product_id - catalog.FIRST_OFFER_ID[self.name]
            product = catalog.build(self.seed, self.name, index, self.shared, self.stride)
            self.products[product_id] = product
        return product


class SandboxState:
    """Everything the sandbox serves. Methods are safe to call from a test thread while the server runs."""

    def __init__(
        self,
        products_per_account: int = 1000,
        seed: int = 1,
        rate_per_second: float | None = 3.0,
        rate_per_minute: int | None = 180,
        order_rate_per_second: float | None = 12.0,
        order_rate_per_minute: int | None = 720,
        control_token: str = "sandbox-control",
        shared_skus_fraction: float = 0.3,
        orders_per_account: int = 300,
    ) -> None:
        self.control_token = control_token
        self.shared_skus_fraction = shared_skus_fraction
        self._defaults = (rate_per_second, rate_per_minute, order_rate_per_second, order_rate_per_minute)
        self.seed, self.products_per_account, self.orders_per_account = (
            seed,
            products_per_account,
            orders_per_account,
        )
        self.faults = FaultInjector()
        self.limiter = RateLimiter({})
        self._lock = threading.RLock()
        self.accounts: dict[str, AccountData] = {}
        self.reset(seed=seed, products_per_account=products_per_account, orders_per_account=orders_per_account)

    def reset(
        self,
        seed: int | None = None,
        products_per_account: int | None = None,
        orders_per_account: int | None = None,
    ) -> None:
        """A freshly generated world: catalogue, orders, limits as constructed, no faults, zero counters."""
        self.seed = self.seed if seed is None else seed
        self.products_per_account = products_per_account or self.products_per_account
        self.orders_per_account = orders_per_account or self.orders_per_account
        per_s, per_m, order_s, order_m = self._defaults
        self.limiter.limits = {"default": Limit(per_s, per_m), "orders": Limit(order_s, order_m)}
        self.limiter.reset_counters()
        self.faults.clear()
        self.ip_whitelisted, self.reported_ip, self.ip_error_status = True, "203.0.113.7", 200
        self._calls = 0
        self.orders_anchor = orders.now_local().replace(hour=0, minute=0, second=0) - timedelta(seconds=1)
        accounts = {}
        n = self.products_per_account
        for name in SANDBOX_ACCOUNTS:
            shared, stride = catalog.shared_layout(name, n, self.shared_skus_fraction, n)
            data = AccountData(name, self.seed, shared, stride)
            data.ids = list(range(catalog.FIRST_OFFER_ID[name], catalog.FIRST_OFFER_ID[name] + n))
            data.next_index = n
            accounts[name] = data
            self._add_orders(name, data, self.orders_per_account, self.orders_anchor)
        with self._lock:
            self.accounts = accounts

    # ---- reads used by the HTTP app -------------------------------------------------------------------

    def product_bytes(self, account: str, product_id: int) -> bytes:
        data = self.accounts[account]
        cached = data.list_bytes.get(product_id)
        if cached is None:
            cached = orjson.dumps(catalog.list_form(data.product(product_id)))
            data.list_bytes[product_id] = cached
        return cached

    def select_products(self, account: str, predicate: Any, only_id: int | None = None) -> list[int]:
        """Ids, ascending, of offers matching `predicate` (None = all); `only_id` narrows to one id."""
        with self._lock:
            data = self.accounts[account]
            ids = data.ids
            if only_id is not None:
                at = bisect.bisect_left(ids, only_id)
                ids = ids[at : at + 1] if at < len(ids) and ids[at] == only_id else []
            if predicate is None:
                return ids
            return [i for i in ids if predicate(data.product(i))]

    # ---- truth and mutations ---------------------------------------------------------------------------

    def truth(self, account: str) -> list[dict[str, Any]]:
        """Every current offer of the account exactly as a list read returns it, ordered by id."""
        with self._lock:
            ids = list(self.accounts[account].ids)
            return [orjson.loads(self.product_bytes(account, i)) for i in ids]

    def _rng(self, account: str, action: str) -> random.Random:
        self._calls += 1
        return random.Random(f"{self.seed}:{account}:{action}:{self._calls}")

    def mutate(self, account: str, n: int, fields: Iterable[str] = MUTABLE_FIELDS) -> list[int]:
        """Change `fields` of `n` random offers (deterministic from the seed and the call count)."""
        fields = tuple(fields)
        unknown = set(fields) - set(MUTABLE_FIELDS)
        if unknown:
            raise ValueError(f"cannot mutate {sorted(unknown)}; choose from {MUTABLE_FIELDS}")
        with self._lock:
            rng = self._rng(account, "mutate")
            data = self.accounts[account]
            chosen = sorted(rng.sample(data.ids, min(n, len(data.ids))))
            for product_id in chosen:
                product = dict(data.product(product_id))
                if "sale_price" in fields:
                    product["sale_price"] = round(product["sale_price"] * rng.uniform(0.8, 1.2) + 0.0001, 4)
                if "stock" in fields:
                    product["stock"] = [
                        {**s, "value": (s["value"] + rng.randint(1, 30)) % 65536} for s in product["stock"]
                    ]
                    product["general_stock"] = sum(s["value"] for s in product["stock"])
                    product["estimated_stock"] = product["general_stock"]
                if "name" in fields:
                    product["name"] = f"{product['name'].split(' (v')[0]} (v{self._calls})"
                if "status" in fields:
                    product["status"] = {1: 0, 0: 1, 2: 1}[product["status"]]
                data.products[product_id] = product
                data.list_bytes.pop(product_id, None)
            return chosen

    def add_products(self, account: str, n: int) -> list[int]:
        """Append `n` new offers (new SKUs, ids above every id the account ever had)."""
        with self._lock:
            data = self.accounts[account]
            first = catalog.FIRST_OFFER_ID[account]
            added = list(range(first + data.next_index, first + data.next_index + n))
            data.next_index += n
            data.ids.extend(added)  # new ids are above every existing one, so the list stays sorted
            return added

    def delete_products(self, account: str, n: int) -> list[int]:
        """Remove `n` random offers; later pages shift, as with eMAG's offset paging."""
        with self._lock:
            rng = self._rng(account, "delete")
            data = self.accounts[account]
            chosen = sorted(rng.sample(data.ids, min(n, len(data.ids))))
            gone = set(chosen)
            for product_id in chosen:
                data.products.pop(product_id, None)
                data.list_bytes.pop(product_id, None)
            data.ids = [i for i in data.ids if i not in gone]
            return chosen

    # ---- orders ----------------------------------------------------------------------------------------

    def _add_orders(self, account: str, data: AccountData, n: int, anchor: datetime) -> list[int]:
        catalogue = [data.product(i) for i in data.ids[:200]] or [
            catalog.build(self.seed, account, data.next_index, 0, 1)
        ]
        added = []
        for _ in range(n):
            order_id = orders.FIRST_ORDER_ID[account] + data.next_order_index
            order = orders.make_order(self.seed, account, data.next_order_index, order_id, anchor, catalogue)
            data.orders[order_id] = order
            data.next_order_index += 1
            added.append(order_id)
        return added

    def add_orders(self, account: str, n: int, status: int = 1) -> list[int]:
        """`n` orders placed just now, in `status` (1 = new by default)."""
        with self._lock:
            data = self.accounts[account]
            now = orders.now_local()
            added = self._add_orders(account, data, n, now)
            for order_id in added:
                order = data.orders[order_id]
                order["status"], order["date"], order["modified"] = status, orders.fmt(now), orders.fmt(now)
            return added

    def modify_orders(self, account: str, n: int) -> list[int]:
        """Move `n` random open orders one step forward (1→2→3→4) and stamp `modified` with now."""
        with self._lock:
            rng = self._rng(account, "orders")
            data = self.accounts[account]
            open_ids = sorted(i for i, o in data.orders.items() if o["status"] in (1, 2, 3))
            chosen = sorted(rng.sample(open_ids, min(n, len(open_ids))))
            for order_id in chosen:
                data.orders[order_id]["status"] += 1
                data.orders[order_id]["modified"] = orders.fmt(orders.now_local())
            return chosen

    def acknowledge(self, account: str, order_id: int) -> str | None:
        """eMAG's acknowledge: new (1) → in progress (2). Returns an error message, or None on success."""
        with self._lock:
            order = self.accounts[account].orders.get(order_id)
            if order is None:
                return f"Order {order_id} not found"
            if order["type"] != 3:
                return "Order acknowledge is available only for orders fulfilled by seller (type 3)"
            if order["status"] == 1:
                order["status"] = 2
                order["modified"] = orders.fmt(orders.now_local())
            return None

    def orders_truth(self, account: str) -> list[Order]:
        with self._lock:
            return [orjson.loads(orjson.dumps(o)) for _, o in sorted(self.accounts[account].orders.items())]

    # ---- limits, IP, counters --------------------------------------------------------------------------

    def set_rate_limit(
        self, per_second: float | None = None, per_minute: int | None = None, bucket: str = "default"
    ) -> None:
        """Change a bucket's limits at runtime; None switches that limit off."""
        self.limiter.limits[bucket] = Limit(per_second, per_minute)

    def set_ip_whitelisted(self, whitelisted: bool, reported_ip: str = "203.0.113.7", status_code: int = 200) -> None:
        """When off, API calls answer isError "Invalid vendor ip [reported_ip]" with HTTP `status_code`."""
        self.ip_whitelisted, self.reported_ip, self.ip_error_status = whitelisted, reported_ip, status_code

    def requests_per_second(self, account: str, bucket: str = "default") -> dict[int, int]:
        """Wall-clock second (epoch) → requests that reached the account in it, 429s included."""
        return self.limiter.requests_per_second(account, bucket)

    def max_requests_in_any_second(self, account: str, bucket: str = "default") -> int:
        """Most requests (429s included) that reached the account within any sliding 1-second window,
        which is never less than the busiest wall-clock second."""
        return self.limiter.max_in_any_second(account, bucket)

    def count_429(self, account: str, bucket: str = "default") -> int:
        return self.limiter.count_429(account, bucket)

    def reset_counters(self) -> None:
        self.limiter.reset_counters()
