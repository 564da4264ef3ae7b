"""The sandbox's mutable world: both accounts' catalogues and orders, limits, faults, IP whitelist, and the
quirks that make it disagree with a client (hostile values, a lagging count, an unstable listing order)."""

from __future__ import annotations

import bisect
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import orjson

from magflow.sandbox import catalog, hostile, mutations, orders, paths
from magflow.sandbox.catalog import Product
from magflow.sandbox.faults import FaultInjector
from magflow.sandbox.hostile import DEFAULT_HOSTILE_KINDS, Hostility
from magflow.sandbox.mutations import DEFAULT_FIELDS, MUTABLE_FIELDS
from magflow.sandbox.orders import Order
from magflow.sandbox.quirks import ListingOrder, Quirks
from magflow.sandbox.ratelimit import Limit, RateLimiter
from magflow.sandbox.schedule import ReadSchedule, ScheduledAction

SANDBOX_ACCOUNTS: dict[str, tuple[str, str]] = {
    "main": ("sandbox-main", "sandbox-main-pass"),
    "fbe": ("sandbox-fbe", "sandbox-fbe-pass"),
}
__all__ = ["DEFAULT_FIELDS", "MUTABLE_FIELDS", "SANDBOX_ACCOUNTS", "Quirks", "SandboxState"]


@dataclass
class AccountData:
    """One account's offers, generated lazily on first read so 100,000-product sandboxes start at once."""

    name: str
    seed: int
    shared: int
    stride: int
    ids: list[int] = field(default_factory=list)  # the listing order: ascending unless listing_order="modified"
    products: dict[int, Product] = field(default_factory=dict)  # generated so far, with mutations applied
    list_bytes: dict[int, bytes] = field(default_factory=dict)  # cached list-read serialisation per id
    healed: dict[int, tuple[Hostility, ...]] = field(default_factory=dict)  # hostile values left after edits
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
        hostile_rate: float = 0.0,
        hostile_seed: int | None = None,
        hostile_kinds: Iterable[str] = DEFAULT_HOSTILE_KINDS,
        count_lag: int = 0,
        listing_order: ListingOrder = "id",
    ) -> None:
        quirks = Quirks(hostile_rate, hostile_seed, tuple(hostile_kinds), count_lag, listing_order).checked()
        self.quirks = self._quirk_defaults = quirks
        self.reads = ReadSchedule()
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
        """A freshly generated world: catalogue, orders, limits and quirks as constructed, no faults, no
        scheduled actions, zero counters."""
        self.seed = self.seed if seed is None else seed
        self.products_per_account = products_per_account or self.products_per_account
        self.orders_per_account = orders_per_account or self.orders_per_account
        per_s, per_m, order_s, order_m = self._defaults
        self.limiter.limits = {"default": Limit(per_s, per_m), "orders": Limit(order_s, order_m)}
        self.limiter.reset_counters()
        self.faults.clear()
        self.reads.clear()
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
            self.quirks = self._quirk_defaults
            self.accounts = accounts

    # ---- reads used by the HTTP app -------------------------------------------------------------------

    def product_bytes(self, account: str, product_id: int) -> bytes:
        """The offer as a list read serialises it (cached until the offer changes)."""
        data = self.accounts[account]
        cached = data.list_bytes.get(product_id)
        if cached is None:
            with self._lock:  # so an edit or a quirk change cannot interleave and leave stale bytes cached
                cached = self._serialise(data, product_id, catalog.list_form(data.product(product_id)))
                data.list_bytes[product_id] = cached
        return cached

    def detail_bytes(self, account: str, product_id: int) -> bytes:
        """The offer as a read filtered by its id serialises it: GPSR details instead of flags."""
        with self._lock:
            data = self.accounts[account]
            return self._serialise(data, product_id, data.product(product_id))

    def _serialise(self, data: AccountData, product_id: int, shown: Product) -> bytes:
        found = self._hostilities(data, product_id)
        if found:
            shown = hostile.apply(shown, found, self.hostile_seed, data.name, product_id)
        return hostile.dumps(shown)  # orjson, unless a value is one orjson refuses (a lone surrogate)

    def select_products(self, account: str, predicate: Any, only_id: int | None = None) -> list[int]:
        """Ids, in listing order, of offers matching `predicate` (None = all); `only_id` narrows to one id."""
        with self._lock:
            data = self.accounts[account]
            ids = data.ids
            if only_id is not None:
                if self.quirks.listing_order == "id":
                    at = bisect.bisect_left(ids, only_id)
                    ids = ids[at : at + 1] if at < len(ids) and ids[at] == only_id else []
                else:
                    ids = [only_id] if only_id in ids else []
            if predicate is None:
                return ids
            return [i for i in ids if predicate(data.product(i))]

    def page_served(self, account: str) -> None:
        """Called by the app after each product_offer/read answered with a page (runs after_reads actions)."""
        self.reads.page_served(account)

    def count_shown(self, total: int) -> int:
        """What product_offer/count answers for `total` listed offers (count_lag applied)."""
        return max(0, total - self.quirks.count_lag)

    # ---- truth and mutations ---------------------------------------------------------------------------

    def truth(self, account: str) -> list[dict[str, Any]]:
        """Every current offer of the account exactly as a list read returns it, in listing order (by id
        unless listing_order="modified"). Lone surrogates are read with stdlib json, as a client would."""
        with self._lock:
            ids = list(self.accounts[account].ids)
            return [hostile.loads(self.product_bytes(account, i)) for i in ids]

    def _rng(self, account: str, action: str) -> random.Random:
        self._calls += 1
        return random.Random(f"{self.seed}:{account}:{action}:{self._calls}")

    def _sample(self, data: AccountData, rng: random.Random, n: int) -> list[int]:
        # Sampled from the ids in id order, so the choice does not depend on the listing order.
        ids = data.ids if self.quirks.listing_order == "id" else sorted(data.ids)
        return sorted(rng.sample(ids, min(n, len(ids))))

    def _changed(self, data: AccountData, product_id: int, keys: Iterable[tuple[paths.Token, ...]]) -> None:
        """After an edit of `keys`: drop the hostile values it replaced, the cached bytes, and in
        listing_order="modified" move the offer to the end of the listing."""
        keys = tuple(keys)
        found = self._hostilities(data, product_id)
        left = tuple(h for h in found if not any(paths.overlaps(h.tokens, k) for k in keys))
        if left != found:
            data.healed[product_id] = left
        data.list_bytes.pop(product_id, None)
        if self.quirks.listing_order == "modified":
            data.ids.remove(product_id)
            data.ids.append(product_id)

    def mutate(self, account: str, n: int, fields: Iterable[str] = DEFAULT_FIELDS) -> list[int]:
        """Change `fields` of `n` random offers (deterministic from the seed and the call count); any of
        MUTABLE_FIELDS. A hostile value in a changed field is replaced by the new value."""
        fields = tuple(fields)
        mutations.check_fields(fields)
        with self._lock:
            rng = self._rng(account, "mutate")
            data = self.accounts[account]
            chosen = self._sample(data, rng, n)
            keys = [(key,) for key in mutations.touched_keys(fields)]
            for product_id in chosen:
                data.products[product_id] = mutations.change(data.product(product_id), fields, rng, self._calls)
                self._changed(data, product_id, keys)
            return chosen

    def set_field(self, account: str, offer_id: int, path: str, value: Any) -> None:
        """Set the value at `path` ("sale_price", "offer_details.notes[0]", ...) of one offer, exactly as
        given (NUL, lone surrogates and huge integers included); missing objects on the way are created.
        The value replaces any hostile value there."""
        tokens = paths.parse(path)
        with self._lock:
            data = self._existing(account, offer_id)
            data.products[offer_id] = paths.put(data.product(offer_id), tokens, value)
            self._changed(data, offer_id, [tokens])

    def remove_field(self, account: str, offer_id: int, path: str) -> None:
        """Remove the key (or list item) at `path` from one offer."""
        self.set_field(account, offer_id, path, paths.MISSING)

    def _existing(self, account: str, offer_id: int) -> AccountData:
        data = self.accounts[account]
        if offer_id not in data.ids:
            raise ValueError(f"offer {offer_id} is not in the {account} catalogue")
        return data

    def add_products(self, account: str, n: int) -> list[int]:
        """Append `n` new offers (new SKUs, ids above every id the account ever had)."""
        with self._lock:
            data = self.accounts[account]
            first = catalog.FIRST_OFFER_ID[account]
            added = list(range(first + data.next_index, first + data.next_index + n))
            data.next_index += n
            data.ids.extend(added)  # new ids are above every existing one: id order holds
            return added

    def delete_products(self, account: str, n: int) -> list[int]:
        """Remove `n` random offers; later pages shift, as with eMAG's offset paging."""
        with self._lock:
            rng = self._rng(account, "delete")
            data = self.accounts[account]
            chosen = self._sample(data, rng, n)
            gone = set(chosen)
            for product_id in chosen:
                data.products.pop(product_id, None)
                data.list_bytes.pop(product_id, None)
                data.healed.pop(product_id, None)
            data.ids = [i for i in data.ids if i not in gone]
            return chosen

    def after_reads(self, n: int, action: Callable[[], object], account: str | None = None) -> ScheduledAction:
        """Run `action` once `n` more product_offer/read requests (of `account`, or of either account)
        have been answered with a page — after page n is built and before the next read is served, so a
        test changes the catalogue at an exact point of a scan. Returns a handle: `.wait()` for the result.
        Faults that replace the whole answer (500, timeout, reset...) do not count."""
        if account is not None and account not in SANDBOX_ACCOUNTS:
            raise ValueError(f"unknown account {account!r}; choose from {sorted(SANDBOX_ACCOUNTS)}")
        return self.reads.add(n, action, account)

    # ---- hostility and quirks --------------------------------------------------------------------------

    @property
    def hostile_seed(self) -> int:
        return self.seed if self.quirks.hostile_seed is None else self.quirks.hostile_seed

    def _hostilities(self, data: AccountData, product_id: int) -> tuple[Hostility, ...]:
        healed = data.healed.get(product_id)
        if healed is not None:
            return healed
        quirks = self.quirks
        if not quirks.hostile_rate:
            return ()
        return hostile.pick(self.hostile_seed, data.name, product_id, quirks.hostile_rate, quirks.hostile_kinds)

    def hostile_offers(self, account: str) -> dict[int, list[str]]:
        """Offer id -> its hostile values as "kind:path" (e.g. "nul:description"), for the current
        catalogue in listing order. Values set with set_field are not listed: the test knows them."""
        with self._lock:
            data = self.accounts[account]
            found = ((i, self._hostilities(data, i)) for i in data.ids)
            return {i: [h.label for h in hostilities] for i, hostilities in found if hostilities}

    def set_quirks(self, **changes: Any) -> Quirks:
        """Change quirks at runtime (any Quirks field); returns them all. A new hostile rate, seed or
        kinds re-draws which offers are hostile."""
        with self._lock:
            kinds = changes.get("hostile_kinds")
            if kinds is not None:
                changes["hostile_kinds"] = (kinds,) if isinstance(kinds, str) else tuple(kinds)
            unknown = sorted(set(changes) - set(asdict(self.quirks)))
            if unknown:
                raise ValueError(f"unknown quirks {unknown}; choose from {sorted(asdict(self.quirks))}")
            new = replace(self.quirks, **changes).checked()
            if new.hostility != self.quirks.hostility:
                for data in self.accounts.values():
                    data.list_bytes.clear()
                    data.healed.clear()
            if new.listing_order == "id" and self.quirks.listing_order != "id":
                for data in self.accounts.values():
                    data.ids.sort()
            self.quirks = new
            return new

    def set_hostile(self, rate: float, seed: int | None = None, kinds: Iterable[str] = DEFAULT_HOSTILE_KINDS) -> None:
        """Make a fraction `rate` of offers hostile, chosen by `seed` (None: the catalogue's seed)."""
        self.set_quirks(hostile_rate=rate, hostile_seed=seed, hostile_kinds=tuple(kinds))

    def set_count_lag(self, k: int) -> None:
        """product_offer/count answers k fewer offers than the listing has (negative k: more)."""
        self.set_quirks(count_lag=k)

    def set_listing_order(self, order: ListingOrder) -> None:
        """Listing order "id" (stable, the default) or "modified" (changed and added offers move to the end)."""
        self.set_quirks(listing_order=order)

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
