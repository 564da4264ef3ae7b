"""Actions that run after a number of product_offer/read pages, so a test can change the catalogue in the
middle of a scan at an exact point (after page 3, before page 4) instead of racing the client."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(eq=False)
class ScheduledAction:
    """An action waiting for `remaining` more pages of `account` (None: of either account)."""

    remaining: int
    action: Callable[[], object]
    account: str | None
    done: threading.Event = field(default_factory=threading.Event)
    result: object = None
    error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.action()
        except Exception as exc:  # the page is still served; the test sees the error through wait()
            log.exception("sandbox: a scheduled action failed")
            self.error = exc
        finally:
            self.done.set()

    def wait(self, timeout: float = 10.0) -> object:
        """The action's return value once it ran; raises what it raised, or TimeoutError."""
        if not self.done.wait(timeout):
            raise TimeoutError(f"the action is still waiting for {self.remaining} more product_offer/read pages")
        if self.error is not None:
            raise self.error
        return self.result


class ReadSchedule:
    """Thread-safe: tests schedule from their thread, the server counts pages in its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[ScheduledAction] = []

    def add(self, n: int, action: Callable[[], object], account: str | None = None) -> ScheduledAction:
        if n < 0:
            raise ValueError("n must be 0 or more product_offer/read pages")
        scheduled = ScheduledAction(n, action, account)
        if n == 0:
            scheduled.run()
        else:
            with self._lock:
                self._pending.append(scheduled)
        return scheduled

    def page_served(self, account: str) -> None:
        """Count one answered product_offer/read of `account` and run the actions now due, in the order
        they were scheduled, before the server reads the next request."""
        if not self._pending:  # the normal path: nothing scheduled, no lock taken
            return
        with self._lock:
            due = []
            for scheduled in self._pending:
                if scheduled.account in (None, account):
                    scheduled.remaining -= 1
                    if scheduled.remaining <= 0:
                        due.append(scheduled)
            self._pending = [s for s in self._pending if s not in due]
        for scheduled in due:  # outside the lock: an action may schedule another
            scheduled.run()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
