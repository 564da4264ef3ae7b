"""Issue 13: a real sync through each sandbox switch and envelope variant stores every product the sandbox lists
(compared with its truth), or, for a shared IP budget, completes without a storm of 429s."""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.db.engine import session_factory
from magflow.emag import InProcessRateBudget, RateLimits
from magflow.sync import EmagProductSyncService
from magflow.sync.transforms import price_with_vat
from magflow.testing.sync import ConfigFactory, stored

ACCOUNTS = ("main", "fbe")


async def _everything_stored(sandbox: Any, engine: AsyncEngine, result: dict[str, Any]) -> None:
    assert result["status"] == "completed", (result["status"], result.get("error_message"), result.get("errors"))
    for account in ACCOUNTS:
        truth = {p["id"]: p for p in sandbox.state.truth(account)}
        rows = await stored(engine, account)
        assert set(rows) == set(truth), account
        assert all(rows[i].raw_emag_data == offer for i, offer in truth.items()), account
        assert not any(row.is_missing for row in rows.values())


def _requests(sandbox: Any, account: str) -> int:
    return sum(sandbox.state.requests_per_second(account).values())


# -- body styles ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body_style", "request_format"),
    [
        ("top_level", "json"), ("data", "json-data"), ("lenient", "json"), ("lenient", "json-data"),
        ("form", "form"), ("top_level", "form"), ("data", "form"),
    ],
)  # fmt: skip
async def test_a_full_sync_in_a_body_style_the_server_reads_stores_every_product(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine, body_style: str, request_format: str
) -> None:
    sandbox.state.set_body_style(body_style)
    result = await run_sync(mode="full", config={"request_format": request_format})
    await _everything_stored(sandbox, clean_engine, result)


async def test_against_a_strict_top_level_server_the_forced_wrapper_stops_on_page_two_and_marks_nothing_missing(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    result = await run_sync(account="main", mode="full", config={"request_format": "json-data"})
    message = result.get("error_message") or ""
    assert result["status"] != "completed"
    assert "eMAG ignored the paging parameters" in message and "(page 2 repeated page 1)" in message
    assert "magflow test-connection --detect" in message
    assert not any(row.is_missing for row in (await stored(clean_engine, "main")).values())
    assert _requests(sandbox, "main") <= 4


# -- protocol, data shapes and listing order --------------------------------------------------------------------

SWITCHES: list[Any] = [
    {"error_style": "http400"},
    {"error_style": "iserror200"},
    {"paging_overflow": "error"},
    {"paging_overflow": "cap"},
    {"product_sort": "id_desc"},
    {"product_sort": "modified_desc"},
    {"insert_at": "front"},
    {"sparse_products": True},
    {"empty_objects_as_lists": True},
    {"platform": "bg"},
    {"platform": "hu"},
    {"platform": "bg", "currency": "BGN"},
    {"iserror": "string"},
    {"errors_key": False},
    {"message_objects": True},
    {"gzip": True},
    {"results_object": True},
]


@pytest.mark.parametrize("switches", SWITCHES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
async def test_a_full_sync_through_a_switch_stores_every_product(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine, switches: dict[str, Any]
) -> None:
    sandbox.state.set_quirks(**switches)
    result = await run_sync(mode="full")
    await _everything_stored(sandbox, clean_engine, result)


@pytest.mark.parametrize(
    ("switches", "change"),
    [
        ({"product_sort": "modified_desc"}, {"route": "mutate", "n": 5}),
        ({"product_sort": "modified_asc"}, {"route": "mutate", "n": 5}),
        ({"product_sort": "id_desc"}, {"route": "add", "n": 3}),
        ({"insert_at": "front"}, {"route": "add", "n": 3}),
        ({"insert_at": "random"}, {"route": "add", "n": 3}),
        ({"product_sort": "modified_desc"}, {"route": "add", "n": 3}),
    ],
    ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()),
)
async def test_a_catalogue_that_moves_during_the_scan_is_still_stored_whole(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine, switches: dict[str, Any], change: dict[str, Any]
) -> None:
    sandbox.state.set_quirks(**switches)
    state, n = sandbox.state, change["n"]
    act: Callable[[], object] = (
        (lambda: state.mutate("main", n)) if change["route"] == "mutate" else (lambda: state.add_products("main", n))
    )
    handle = state.after_reads(1, act, account="main")  # after page 1, before page 2
    result = await run_sync(mode="full")
    assert handle.done.is_set()
    await _everything_stored(sandbox, clean_engine, result)


# -- faults and envelope variants -----------------------------------------------------------------------------

FAULTS: list[Any] = [
    {"kind": "ok_without_iserror", "count": 2},
    {"kind": "captive_html", "count": 3, "route": "*"},
    {"kind": "429", "count": 3, "route": "*"},
    {"kind": "429", "count": 3, "route": "*", "retry_after": True},
    {"kind": "reset_mid_body", "count": 2, "page": 2},
    {"kind": "slow", "page": 2, "delay_seconds": 2.0},
    {"kind": "applied_then_500", "page": 2},
    {"kind": "500", "count": 2, "route": "product_offer/count"},
    {"kind": "applied_then_500", "route": "product_offer/count"},
    {"kind": "empty_page", "page": 2},
    {"kind": "no_results", "page": 3},
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
async def test_a_full_sync_survives_a_fault_and_stores_every_product(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine, fault: dict[str, Any]
) -> None:
    fault = dict(fault)
    sandbox.state.set_quirks(retry_after=fault.pop("retry_after", False))
    sandbox.state.faults.inject(**fault)
    result = await run_sync(mode="full")
    assert sandbox.state.faults.pending() == 0, "every injected fault was met"
    await _everything_stored(sandbox, clean_engine, result)


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "500", "count": 2, "route": "vat/read"},
        {"kind": "captive_html", "route": "vat/read"},
        {"kind": "applied_then_500", "route": "vat/read"},
    ],
    ids=lambda f: f["kind"],
)
async def test_vat_read_failing_on_a_hungarian_platform_still_prices_every_offer_with_its_rate(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine, fault: dict[str, Any]
) -> None:
    sandbox.state.set_quirks(platform="hu")
    sandbox.state.faults.inject(**fault)
    result = await run_sync(mode="full", service={"transform": price_with_vat})
    assert sandbox.state.faults.pending() == 0
    await _everything_stored(sandbox, clean_engine, result)
    rates = {r["vat_id"]: Decimal(str(r["vat_rate"])) for r in sandbox.state.vat_rates()}
    assert set(rates.values()) == {Decimal("0.27"), Decimal("0.18"), Decimal("0.05"), Decimal("0.0")}
    for account in ACCOUNTS:
        for row in (await stored(clean_engine, account)).values():
            assert row.sale_price is not None and row.vat_id in rates
            gross = (row.sale_price * (1 + rates[row.vat_id])).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            assert row.computed_fields["sale_price_with_vat"] == str(gross)


# -- the rate-limit model, with eMAG's limits on and a client keeping to 3 requests/s per account ---------------


async def _sync_at_emags_pace(engine: AsyncEngine, configs: ConfigFactory) -> dict[str, Any]:
    budget = InProcessRateBudget(RateLimits(per_second=3.0, per_minute=180))
    try:
        async with (
            session_factory(engine)() as db,
            EmagProductSyncService(
                db=db, account_type="both", account_configs=configs(deadline_seconds=120.0), budget=budget,
                triggered_by="test",
            ) as svc,
        ):  # fmt: skip
            return await svc.sync_all_products(mode="full")
    finally:
        await budget.aclose()


@pytest.mark.parametrize(
    "switches",
    [
        {"count_rejected": True},
        {"rate_window": "fixed"},
        {"limit_before_auth": True},
        {"retry_after": True},
        {"rate_window": "fixed", "count_rejected": True, "retry_after": True},
    ],
    ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()),
)
async def test_a_full_sync_at_emags_pace_stores_every_product_under_each_rate_model(
    sandbox: Any, configs: ConfigFactory, clean_engine: AsyncEngine, switches: dict[str, Any]
) -> None:
    sandbox.state.set_rate_limit(3.0, 180)
    sandbox.state.set_quirks(**switches)
    result = await _sync_at_emags_pace(clean_engine, configs)
    await _everything_stored(sandbox, clean_engine, result)
    assert sum(sandbox.state.count_429(a) for a in ACCOUNTS) <= 2


async def test_with_one_budget_for_both_accounts_the_sync_completes_without_a_storm_of_429s(
    sandbox: Any, configs: ConfigFactory, clean_engine: AsyncEngine
) -> None:
    sandbox.state.reset(products_per_account=1500)  # enough pages for a client that does not adapt to show it
    sandbox.state.set_rate_limit(3.0, 180)
    sandbox.state.set_quirks(rate_scope="ip")
    result = await _sync_at_emags_pace(clean_engine, configs)
    await _everything_stored(sandbox, clean_engine, result)
    requests = sum(_requests(sandbox, a) for a in ACCOUNTS)
    refused = sum(sandbox.state.count_429(a) for a in ACCOUNTS)
    assert refused <= max(4, requests // 10), f"{refused} of {requests} requests refused"
