"""The sandbox's mutable world: both accounts' catalogues and orders, limits, faults, IP whitelist, and the
switches that make it answer like eMAG rather than kindly (magflow.sandbox.switches)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from magflow.sandbox import catalog, hostile, listing, mutations, orders, paths, shapes
from magflow.sandbox.catalog import Product
from magflow.sandbox.faults import Fault, FaultInjector, parse_spec
from magflow.sandbox.hostile import Hostility
from magflow.sandbox.mutations import DEFAULT_FIELDS, MUTABLE_FIELDS
from magflow.sandbox.order_book import OrderBook
from magflow.sandbox.orders import Order
from magflow.sandbox.platforms import Platform, platform
from magflow.sandbox.quirks import ListingOrder, Quirks
from magflow.sandbox.ratelimit import Limit, RateLimiter
from magflow.sandbox.schedule import ReadSchedule, ScheduledAction
from magflow.sandbox.switches import Switches
from magflow.sandbox.wire import BodyStyle, Wire

SANDBOX_ACCOUNTS: dict[str, tuple[str, str]] = {
    "main": ("sandbox-main", "sandbox-main-pass"),
    "fbe": ("sandbox-fbe", "sandbox-fbe-pass"),
}
IP_MESSAGE = "ERROR: Invalid vendor ip [{ip}]"
__all__ = ["DEFAULT_FIELDS", "MUTABLE_FIELDS", "SANDBOX_ACCOUNTS", "Quirks", "SandboxState"]


@dataclass
class AccountData:
    """One account's offers, generated lazily on first read so 100,000-product sandboxes start at once."""

    name: str
    seed: int
    shared: int
    stride: int
    market: Platform
    currency: str | None = None
    ids: list[int] = field(default_factory=list)  # the listing order (magflow.sandbox.listing)
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
            product = catalog.build(self.seed, self.name, index, self.shared, self.stride, self.market, self.currency)
            self.products[product_id] = product
        return product


class SandboxState(OrderBook):
    """Everything the sandbox serves. Methods are safe to call from a test thread while the server runs.

    Any switch of magflow.sandbox.switches is a keyword here (`body_style="data"`, `gzip=True`,
    `rate_scope="ip"`, `hostile_rate=0.02`, ...); `faults` takes specs such as "captive_html:3" or
    "500@order/acknowledge" that every reset injects again."""

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
        faults: Iterable[str | Fault] = (),
        **switches: Any,
    ) -> None:
        self._switch_defaults = self.switches_now = Switches.default().changed(**switches)
        self._fault_defaults = [parse_spec(f) if isinstance(f, str) else f for f in faults]
        self.reads = ReadSchedule()
        self.control_token = control_token
        self.shared_skus_fraction = shared_skus_fraction
        self._defaults = (rate_per_second, rate_per_minute, order_rate_per_second, order_rate_per_minute)
        self.seed, self.products_per_account = seed, products_per_account
        self.orders_per_account = orders_per_account
        self.faults = FaultInjector()
        self.limiter = RateLimiter({})
        self._lock = threading.RLock()
        self.accounts: dict[str, AccountData] = {}
        self.reset(seed=seed, products_per_account=products_per_account, orders_per_account=orders_per_account)

    @property
    def quirks(self) -> Quirks:
        return self.switches_now.quirks

    @property
    def wire(self) -> Wire:
        return self.switches_now.wire

    def reset(
        self,
        seed: int | None = None,
        products_per_account: int | None = None,
        orders_per_account: int | None = None,
    ) -> None:
        """A freshly generated world: catalogue, orders, limits, switches and faults as constructed, no other
        faults, no scheduled actions, zero counters."""
        self.seed = self.seed if seed is None else seed
        self.products_per_account = products_per_account or self.products_per_account
        self.orders_per_account = orders_per_account or self.orders_per_account
        per_s, per_m, order_s, order_m = self._defaults
        self.limiter.limits = {"default": Limit(per_s, per_m), "orders": Limit(order_s, order_m)}
        self.limiter.model = self._switch_defaults.rate
        self.limiter.reset_counters()
        self.faults.clear()
        for fault in self._fault_defaults:
            self.faults.schedule(fault)
        self.reads.clear()
        self.ip_whitelisted, self.reported_ip, self.ip_error_status = True, "203.0.113.7", 200
        self._calls = 0
        self.orders_anchor = orders.now_local().replace(hour=0, minute=0, second=0) - timedelta(seconds=1)
        quirks = self._switch_defaults.quirks
        accounts = {}
        n = self.products_per_account
        for name in SANDBOX_ACCOUNTS:
            shared, stride = catalog.shared_layout(name, n, self.shared_skus_fraction, n)
            data = AccountData(name, self.seed, shared, stride, platform(quirks.platform), quirks.currency)
            data.ids = list(range(catalog.FIRST_OFFER_ID[name], catalog.FIRST_OFFER_ID[name] + n))
            listing.arrange(data.ids, quirks)
            data.next_index = n
            accounts[name] = data
            self._add_orders(name, data, self.orders_per_account, self.orders_anchor)
        with self._lock:
            self.switches_now = self._switch_defaults
            self.accounts = accounts

    # ---- reads used by the HTTP app -------------------------------------------------------------------

    def product_bytes(self, account: str, product_id: int) -> bytes:
        """The offer as a list read serialises it (cached until the offer changes)."""
        data = self.accounts[account]
        cached = data.list_bytes.get(product_id)
        if cached is None:
            with self._lock:  # so an edit or a switch change cannot interleave and leave stale bytes cached
                cached = self._serialise(data, product_id, catalog.list_form(data.product(product_id)))
                data.list_bytes[product_id] = cached
        return cached

    def detail_bytes(self, account: str, product_id: int) -> bytes:
        """The offer as a read filtered by its id serialises it: GPSR details instead of flags."""
        with self._lock:
            data = self.accounts[account]
            return self._serialise(data, product_id, data.product(product_id))

    def _serialise(self, data: AccountData, product_id: int, shown: Product) -> bytes:
        quirks = self.quirks
        if quirks.sparse_products:
            shown = shapes.sparse(shown, self.seed, data.name, product_id)
        found = self._hostilities(data, product_id)
        if found:
            shown = hostile.apply(shown, found, self.hostile_seed, data.name, product_id)
        if quirks.empty_objects_as_lists:
            shown = shapes.php_empty(shown, self.seed, data.name, product_id)
        return hostile.dumps(shown)  # orjson, unless a value is one orjson refuses (a lone surrogate)

    def select_products(self, account: str, predicate: Any, only_id: int | None = None) -> list[int]:
        """Ids, in listing order, of offers matching `predicate` (None = all); `only_id` narrows to one id."""
        with self._lock:
            data = self.accounts[account]
            ids = data.ids if only_id is None else listing.find(data.ids, only_id)
            if predicate is None:
                return ids
            return [i for i in ids if predicate(data.product(i))]

    def page_served(self, account: str) -> None:
        """Called by the app after each product_offer/read answered with a page (runs after_reads actions)."""
        self.reads.page_served(account)

    def count_shown(self, total: int) -> int:
        """What product_offer/count answers for `total` listed offers (count_lag applied)."""
        return max(0, total - self.quirks.count_lag)

    def vat_rates(self) -> list[dict[str, object]]:
        return platform(self.quirks.platform).vat_rates()

    # ---- truth and mutations ---------------------------------------------------------------------------

    def truth(self, account: str) -> list[dict[str, Any]]:
        """Every current offer of the account exactly as a list read returns it, in listing order (by id
        unless product_sort says otherwise). Lone surrogates are read with stdlib json, as a client would."""
        with self._lock:
            ids = list(self.accounts[account].ids)
            return [hostile.loads(self.product_bytes(account, i)) for i in ids]

    def _rng(self, account: str, action: str) -> random.Random:
        self._calls += 1
        return random.Random(f"{self.seed}:{account}:{action}:{self._calls}")

    def _sample(self, data: AccountData, rng: random.Random, n: int) -> list[int]:
        # Sampled from the ids in id order, so the choice does not depend on the listing order.
        ids = sorted(data.ids)
        return sorted(rng.sample(ids, min(n, len(ids))))

    def _changed(self, data: AccountData, product_id: int, keys: Iterable[tuple[paths.Token, ...]]) -> None:
        """After an edit of `keys`: drop the hostile values it replaced, the cached bytes, and move the offer
        as the listing order says."""
        keys = tuple(keys)
        found = self._hostilities(data, product_id)
        left = tuple(h for h in found if not any(paths.overlaps(h.tokens, k) for k in keys))
        if left != found:
            data.healed[product_id] = left
        data.list_bytes.pop(product_id, None)
        listing.edited(data.ids, product_id, self.quirks)

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
        if not listing.find(data.ids, offer_id):
            raise ValueError(f"offer {offer_id} is not in the {account} catalogue")
        return data

    def add_products(self, account: str, n: int) -> list[int]:
        """Add `n` new offers (new SKUs, ids above every id the account ever had), placed in the listing as
        product_sort and insert_at say (at the end by default)."""
        with self._lock:
            data = self.accounts[account]
            first = catalog.FIRST_OFFER_ID[account]
            added = list(range(first + data.next_index, first + data.next_index + n))
            data.next_index += n
            listing.inserted(data.ids, added, self.quirks, self._rng(account, "insert"))
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

    # ---- hostility and switches ------------------------------------------------------------------------

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

    def set_quirks(self, **changes: Any) -> dict[str, Any]:
        """Change any switches at runtime (magflow.sandbox.switches); returns them all by name. A new hostile
        rate, seed or kinds re-draws which offers are hostile; a new platform or currency re-generates the
        offers (edits are lost) and relabels the orders."""
        with self._lock:
            old, new = self.switches_now, self.switches_now.changed(**changes)
            if (new.quirks.platform, new.quirks.currency) != (old.quirks.platform, old.quirks.currency):
                self._relabel(new.quirks)
            if new.quirks.shape != old.quirks.shape:
                for data in self.accounts.values():
                    data.list_bytes.clear()
                    data.healed.clear()
            if new.quirks.product_sort != old.quirks.product_sort:
                for data in self.accounts.values():
                    listing.arrange(data.ids, new.quirks)
            self.limiter.model = new.rate
            self.switches_now = new
            return new.flat()

    def _relabel(self, quirks: Quirks) -> None:
        market = platform(quirks.platform)
        for data in self.accounts.values():
            data.market, data.currency = market, quirks.currency
            data.products.clear()
            for order in data.orders.values():
                for line in order["products"]:
                    line["currency"] = quirks.currency or market.currency
                    line["vat"] = orders.line_vat(market, data.product(line["product_id"]).get("vat_id"))

    def set_hostile(
        self, rate: float, seed: int | None = None, kinds: Iterable[str] = hostile.DEFAULT_HOSTILE_KINDS
    ) -> None:
        """Make a fraction `rate` of offers hostile, chosen by `seed` (None: the catalogue's seed)."""
        self.set_quirks(hostile_rate=rate, hostile_seed=seed, hostile_kinds=tuple(kinds))

    def set_count_lag(self, k: int) -> None:
        """product_offer/count answers k fewer offers than the listing has (negative k: more)."""
        self.set_quirks(count_lag=k)

    def set_listing_order(self, order: ListingOrder) -> None:
        """Listing order "id" (stable, the default) or "modified" (changed and added offers move to the end)."""
        self.set_quirks(listing_order=order)

    def set_body_style(self, style: BodyStyle | str) -> None:
        """What a request body is read as: "top_level", "data", "lenient" or "form" (magflow.sandbox.wire)."""
        self.set_quirks(body_style=style)

    # ---- limits, IP, counters --------------------------------------------------------------------------

    def set_rate_limit(
        self, per_second: float | None = None, per_minute: int | None = None, bucket: str = "default"
    ) -> None:
        """Change a bucket's limits at runtime; None switches that limit off."""
        self.limiter.limits[bucket] = Limit(per_second, per_minute)

    def set_ip_whitelisted(self, whitelisted: bool, reported_ip: str = "203.0.113.7", status_code: int = 200) -> None:
        """When off, API calls answer isError "ERROR: Invalid vendor ip [reported_ip]" with HTTP `status_code`
        (eMAG's status for it is unconfirmed: 200 and 403 are both plausible)."""
        self.ip_whitelisted, self.reported_ip, self.ip_error_status = whitelisted, reported_ip, status_code

    @property
    def ip_message(self) -> str:
        return IP_MESSAGE.format(ip=self.reported_ip)

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
