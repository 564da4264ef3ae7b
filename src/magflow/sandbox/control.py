"""HTTP control of a running sandbox under /_sandbox, guarded by the X-Sandbox-Token header.

Every route mirrors a SandboxState method, so a demo or an out-of-process test can do over HTTP
what an in-process test does in Python.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from magflow.sandbox import hostile
from magflow.sandbox.faults import DEFAULT_ROUTE
from magflow.sandbox.mutations import DEFAULT_FIELDS
from magflow.sandbox.switches import RATE_NAMES

if TYPE_CHECKING:
    from magflow.sandbox.state import SandboxState

Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[["SandboxState", str, dict[str, Any]], Any]


def _mutate(s: SandboxState, a: str, b: dict[str, Any]) -> Any:
    fields = b.get("fields", DEFAULT_FIELDS)
    return {"ids": s.mutate(a, int(b.get("n", 1)), fields)}


def _faults(s: SandboxState, _: str, b: dict[str, Any]) -> Any:
    if b.get("clear"):
        s.faults.clear()
    route = str(b.get("route", DEFAULT_ROUTE))
    if "kind" in b:
        s.faults.inject(
            str(b["kind"]), int(b.get("count", 1)), b.get("page"), float(b.get("timeout_seconds", 30)), route,
            float(b.get("delay_seconds", 30)),
        )  # fmt: skip
    if "error_rate" in b:
        kinds = b.get("kinds", ("500", "502_html", "504"))
        s.faults.set_error_rate(float(b["error_rate"]), kinds, int(b.get("seed", 0)), route)
    if "latency_ms" in b:
        s.faults.set_latency(float(b["latency_ms"]))
    return {"pending": s.faults.pending(), "triggered": list(s.faults.triggered)}


def _rate_limit(s: SandboxState, _: str, b: dict[str, Any]) -> Any:
    """Limits of one bucket, and any rate-model switch (rate_scope, count_rejected, rate_window, ...)."""
    model = {k: v for k, v in b.items() if k in RATE_NAMES or k == "window"}
    if model:
        s.set_quirks(**model)
    if "per_second" in b or "per_minute" in b or not model:
        s.set_rate_limit(b.get("per_second"), b.get("per_minute"), str(b.get("bucket", "default")))
    limits: dict[str, Any] = {bucket: vars(limit) for bucket, limit in s.limiter.limits.items()}
    return {**limits, "model": asdict(s.limiter.model)}


def _counters(s: SandboxState, a: str, b: dict[str, Any]) -> Any:
    bucket = str(b.get("bucket", "default"))
    return {
        "requests_per_second": {str(k): v for k, v in s.requests_per_second(a, bucket).items()},
        "max_requests_in_any_second": s.max_requests_in_any_second(a, bucket),
        "count_429": s.count_429(a, bucket),
    }


def _reset(s: SandboxState, _: str, b: dict[str, Any]) -> Any:
    s.reset(seed=b.get("seed"), products_per_account=b.get("products_per_account"))
    return {"seed": s.seed, "products_per_account": s.products_per_account}


def _quirks(s: SandboxState, _: str, b: dict[str, Any]) -> Any:
    return s.set_quirks(**b)


def _set_field(s: SandboxState, a: str, b: dict[str, Any]) -> Any:
    s.set_field(a, int(b["id"]), str(b["path"]), b["value"])
    return {}


def _remove_field(s: SandboxState, a: str, b: dict[str, Any]) -> Any:
    s.remove_field(a, int(b["id"]), str(b["path"]))
    return {}


def _after_reads(s: SandboxState, a: str, b: dict[str, Any]) -> Any:
    """Schedule one of this account's mutating routes, e.g. {"n": 3, "route": "delete", "body": {"n": 5}}."""
    route, body = str(b["route"]), b.get("body", {})
    if route not in _SCHEDULABLE or not isinstance(body, dict):
        raise ValueError(f"route must be one of {sorted(_SCHEDULABLE)} and body an object")
    s.after_reads(int(b["n"]), lambda: ACCOUNT_ROUTES[route](s, a, body), a)
    return {"pending": s.reads.pending()}


def _reset_counters(s: SandboxState, _: str, __: dict[str, Any]) -> Any:
    s.reset_counters()
    return {}


def _ip(s: SandboxState, _: str, b: dict[str, Any]) -> Any:
    status = int(b.get("status_code", 200))
    s.set_ip_whitelisted(bool(b.get("whitelisted", True)), str(b.get("reported_ip", "203.0.113.7")), status)
    return {"whitelisted": s.ip_whitelisted, "status_code": s.ip_error_status, "message": s.ip_message}


ACCOUNT_ROUTES: dict[str, Handler] = {
    "mutate": _mutate,
    "add": lambda s, a, b: {"ids": s.add_products(a, int(b.get("n", 1)))},
    "delete": lambda s, a, b: {"ids": s.delete_products(a, int(b.get("n", 1)))},
    "truth": lambda s, a, b: s.truth(a),
    "orders/add": lambda s, a, b: {"ids": s.add_orders(a, int(b.get("n", 1)), int(b.get("status", 1)))},
    "orders/modify": lambda s, a, b: {"ids": s.modify_orders(a, int(b.get("n", 1)))},
    "orders/truth": lambda s, a, b: s.orders_truth(a),
    "counters": _counters,
    "set_field": _set_field,
    "remove_field": _remove_field,
    "hostile": lambda s, a, b: {str(i): kinds for i, kinds in s.hostile_offers(a).items()},
    "after_reads": _after_reads,
}
_SCHEDULABLE = {"mutate", "add", "delete", "set_field", "remove_field", "orders/add", "orders/modify"}
GLOBAL_ROUTES: dict[str, Handler] = {
    "reset": _reset,
    "quirks": _quirks,
    "switches": _quirks,
    "faults": _faults,
    "rate_limit": _rate_limit,
    "ip_whitelist": _ip,
    "counters/reset": _reset_counters,
}


async def handle(state: SandboxState, scope: dict[str, Any], body: bytes, send: Send) -> None:
    headers = dict(scope["headers"])
    token = headers.get(b"x-sandbox-token", b"").decode("latin-1")
    if not hmac.compare_digest(token, state.control_token):
        await _reply(send, 401, {"error": "unauthorized", "detail": "send the control token in X-Sandbox-Token"})
        return
    route = scope["path"][len("/_sandbox") :].strip("/")
    try:
        args = hostile.loads(body) if body.strip() else {}  # stdlib json reads lone surrogates
        if not isinstance(args, dict):
            raise ValueError("the body must be a JSON object")
        if route in GLOBAL_ROUTES:
            result = GLOBAL_ROUTES[route](state, "", args)
        else:
            account, _, action = route.partition("/")
            if account not in state.accounts or action not in ACCOUNT_ROUTES:
                await _reply(send, 404, {"error": "not_found", "detail": f"no control route /_sandbox/{route}"})
                return
            result = ACCOUNT_ROUTES[action](state, account, args)
    except (ValueError, TypeError, KeyError) as exc:
        await _reply(send, 400, {"error": "bad_request", "detail": str(exc)})
        return
    await _reply(send, 200, result)


async def _reply(send: Send, status: int, payload: Any) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": hostile.dumps(payload)})
