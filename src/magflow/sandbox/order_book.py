"""The orders half of SandboxState: generation, reads, the seller's acknowledge, and changes a test makes."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import orjson

from magflow.sandbox import catalog, orders
from magflow.sandbox.orders import Order

if TYPE_CHECKING:
    from magflow.sandbox.state import AccountData


class OrderBook:
    """Mixed into SandboxState, whose lock, accounts and seed it uses."""

    _lock: threading.RLock
    accounts: dict[str, AccountData]
    seed: int

    def _rng(self, account: str, action: str) -> random.Random:
        raise NotImplementedError

    def _add_orders(self, account: str, data: AccountData, n: int, anchor: datetime) -> list[int]:
        catalogue = [data.product(i) for i in sorted(data.ids)[:200]] or [
            catalog.build(self.seed, account, data.next_index, 0, 1, data.market, data.currency)
        ]
        added = []
        for _ in range(n):
            order_id = orders.FIRST_ORDER_ID[account] + data.next_order_index
            order = orders.make_order(
                self.seed, account, data.next_order_index, order_id, anchor, catalogue, data.market, data.currency
            )
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

    def select_orders(self, account: str, matches: Callable[[Order], bool]) -> list[Order]:
        """The account's orders that match, by id (the live records: serialise them, do not keep them)."""
        with self._lock:
            return [o for _, o in sorted(self.accounts[account].orders.items()) if matches(o)]

    def orders_truth(self, account: str) -> list[Order]:
        with self._lock:
            copied: list[Order] = orjson.loads(orjson.dumps(self.select_orders(account, lambda _: True)))
            return copied
