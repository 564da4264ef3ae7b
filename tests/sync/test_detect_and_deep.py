"""`magflow test-connection` (plain, --detect, --deep) as a user runs it, and syncs that use what --detect recorded,
against an eMAG stand-in over real HTTP and the real database; and syncs through eMAG's envelope variants."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.accounts import configured_accounts, record_request_format, with_recorded_formats
from magflow.config import Settings, load_settings
from magflow.db.engine import session_factory
from magflow.emag import Detection, InProcessRateBudget, RateLimits, StyleTrial
from magflow.emag.body import FORM, JSON
from magflow.models import EmagAccountState
from magflow.sync import EmagProductSyncService
from magflow.testing.standin import PASSWORDS, StandIn
from magflow.testing.sync import stored

FAST = RateLimits(per_second=1000, per_minute=60_000, orders_per_second=1000, orders_per_minute=60_000)
STYLE_OF = {"top_level": "json", "wrapped": "json-data", "form": "form"}


def magflow(args: list[str], database_url: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EMAG_", "REDIS_URL"))}
    # The stand-in has no rate limit: a budget far above eMAG's keeps the test quick.
    clean.update(DATABASE_URL=database_url, COLUMNS="200", EMAG_RATE_LIMIT_PER_SECOND="50")
    clean.update(EMAG_RATE_LIMIT_PER_MINUTE="3000", **env)
    return subprocess.run(
        [sys.executable, "-m", "magflow", *args], env=clean, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def both(emag: StandIn) -> dict[str, str]:
    return {**emag.env("main"), **emag.env("fbe")}


def settings_for(emag: StandIn, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"redis_url": None, "emag_max_attempts": 4}
    for account in ("main", "fbe"):
        values[f"emag_{account}_username"] = f"{account}-user"
        values[f"emag_{account}_password"] = PASSWORDS[account]
        values[f"emag_{account}_base_url"] = emag.base_url
    return load_settings(**{**values, **overrides})


async def sync_from_settings(engine: AsyncEngine, settings: Settings) -> dict[str, Any]:
    """A full sync of both accounts with the configs built from the settings, as `magflow sync` and the API do."""
    async with (
        session_factory(engine)() as db,
        EmagProductSyncService(
            db=db,
            account_type="both",
            settings=settings,
            account_configs=configured_accounts(settings),
            budget=InProcessRateBudget(FAST),
            triggered_by="test",
        ) as svc,
    ):
        return await svc.sync_all_products(mode="full")


async def recorded(engine: AsyncEngine) -> dict[str, str | None]:
    async with session_factory(engine)() as session:
        rows = (await session.scalars(select(EmagAccountState))).all()
    return {r.account_type: r.request_format for r in rows}


@pytest.fixture
def tmp_cwd(tmp_path: Path) -> Path:
    return tmp_path  # no .env here: the test's environment is the only configuration


@pytest.mark.parametrize("reads", ["top_level", "wrapped", "form"])
async def test_detect_records_the_style_emag_honours_and_syncs_then_use_it(
    reads: Any, clean_engine: AsyncEngine, database_url: str, tmp_cwd: Path
) -> None:
    style = STYLE_OF[reads]
    with StandIn(products=230, reads=reads) as emag:
        detect = magflow(["test-connection", "--detect"], database_url, tmp_cwd, both(emag))
        assert detect.returncode == 0, detect.stdout + detect.stderr
        assert f"main: recorded request format {style}" in detect.stdout
        assert f"fbe: recorded request format {style}" in detect.stdout
        assert await recorded(clean_engine) == {"main": style, "fbe": style}

        status = magflow(["status"], database_url, tmp_cwd, both(emag))
        assert f"main: request format {style} (detected " in status.stdout

        emag.received.clear()
        result = await sync_from_settings(clean_engine, settings_for(emag))
        assert result["status"] == "completed", result
        for account, offers in emag.catalogue.items():
            assert sorted(await stored(clean_engine, account)) == sorted(o["id"] for o in offers)
        expected_type = FORM if style == "form" else JSON
        assert {r.content_type for r in emag.received} == {expected_type}


async def test_detect_keeps_the_evidence_of_every_style_it_tried(
    clean_engine: AsyncEngine, database_url: str, tmp_cwd: Path
) -> None:
    with StandIn(products=3, reads="form") as emag:
        detect = magflow(["test-connection", "--detect", "--account", "main"], database_url, tmp_cwd, emag.env())
    assert detect.returncode == 0, detect.stdout + detect.stderr
    async with session_factory(clean_engine)() as session:
        state = await session.get(EmagAccountState, "main")
    assert state is not None and state.request_format == "form" and state.request_format_detected_at is not None
    detection = state.request_format_detection or {}
    assert [(t["request_format"], t["works"]) for t in detection["tried"]] == [
        ("json", False), ("json-data", False), ("form", True),
    ]  # fmt: skip
    assert detection["tried"][0]["detail"] == "a page of one offer held 3 (itemsPerPage ignored)"
    assert detection["detected_by"] == "`magflow test-connection --detect`"
    assert await recorded(clean_engine) == {"main": "form"}  # fbe was not asked for


async def test_plain_test_connection_says_when_paging_is_ignored_and_what_to_run(
    clean_engine: AsyncEngine, database_url: str, tmp_cwd: Path
) -> None:
    with StandIn(products=5, reads="wrapped") as emag:
        checked = magflow(["test-connection", "--account", "main"], database_url, tmp_cwd, emag.env())
    assert checked.returncode == 1
    assert "main: paging_ignored — eMAG ignored the paging parameters with EMAG_REQUEST_FORMAT=json" in checked.stdout
    assert "run `magflow test-connection --detect`" in checked.stdout


async def test_an_unknown_account_is_a_clear_error(clean_engine: AsyncEngine, database_url: str, tmp_cwd: Path) -> None:
    typo = magflow(["test-connection", "--account", "mian"], database_url, tmp_cwd, {})
    assert typo.returncode == 2
    assert "--account must be main, fbe or both (got 'mian')" in typo.stdout


async def test_detect_on_an_empty_catalogue_records_nothing_and_says_why(
    clean_engine: AsyncEngine, database_url: str, tmp_cwd: Path
) -> None:
    with StandIn(products=0) as emag:
        detect = magflow(["test-connection", "--detect", "--account", "fbe"], database_url, tmp_cwd, emag.env("fbe"))
    assert detect.returncode == 1
    assert "account fbe has no offers, so no request format can be proven" in detect.stdout
    assert await recorded(clean_engine) == {}


async def test_deep_prints_one_table_for_both_accounts_and_no_secret(
    clean_engine: AsyncEngine, database_url: str, tmp_cwd: Path
) -> None:
    with StandIn(products=150, variants=["rate_headers"]) as emag:
        deep = magflow(["test-connection", "--deep"], database_url, tmp_cwd, both(emag))
    assert deep.returncode == 0, deep.stdout + deep.stderr
    for account in ("main", "fbe"):
        for check in ("credentials", "IP whitelist", "request format", "count vs listing", "platform", "currency"):
            assert re.search(rf"^\s+{account}\s+{check}\s", deep.stdout, re.MULTILINE), (account, check)
    assert "EMAG_REQUEST_FORMAT=json: paging and filters honoured" in deep.stdout
    assert "150 counted, 150 listed" in deep.stdout
    assert "X-RateLimit-Limit-3second: 9" in deep.stdout
    assert "150 offers, 2 pages of 100" in deep.stdout
    assert "with both accounts in parallel" in deep.stdout
    for password in PASSWORDS.values():
        assert password not in deep.stdout + deep.stderr


async def test_an_account_setting_beats_the_recorded_style_which_beats_the_global_setting(
    clean_engine: AsyncEngine,
) -> None:
    for account in ("main", "fbe"):
        found = Detection(account, "form", [StyleTrial("form", True, "ok")], "found", 3)
        await record_request_format(clean_engine, found, "test")
    with StandIn(products=120, reads="any") as emag:
        settings = settings_for(emag, emag_request_format="json", emag_main_request_format="json-data")
        configs = await with_recorded_formats(clean_engine, configured_accounts(settings))
        assert (configs["main"].request_format, configs["main"].request_format_source) == (
            "json-data",
            "account_setting",
        )
        assert (configs["fbe"].request_format, configs["fbe"].request_format_source) == ("form", "recorded")

        result = await sync_from_settings(clean_engine, settings)
        assert result["status"] == "completed", result
        sent = {(r.account, r.content_type, r.body[:8]) for r in emag.received}
    assert {(a, t) for a, t, _ in sent} == {("main", JSON), ("fbe", FORM)}
    assert all(body.startswith(b'{"data"') for account, _, body in sent if account == "main")


def _spoilt(offer: dict[str, Any]) -> dict[str, Any]:
    """PHP's `[]` in every place an empty object may stand."""
    return {
        **offer,
        "family": [],
        "images": [[]],
        "characteristics": [[]],
        "handling_time": [[]],
        "validation_status": [[]],
        "offer_validation_status": [],
        "manufacturer": [[]],
        "doc_errors": {},
        "offer_details": [],
    }


@pytest.fixture
def hostile_emag() -> Iterator[StandIn]:
    variants: Any = ["iserror_string", "results_object", "messages_objects", "errors_key", "gzip", "rate_headers"]
    with StandIn(products=250, variants=variants) as emag:
        emag.catalogue["main"][137] = _spoilt(emag.catalogue["main"][137])
        yield emag


async def test_a_sync_through_every_envelope_variant_and_fault_stores_everything(
    hostile_emag: StandIn, clean_engine: AsyncEngine
) -> None:
    emag = hostile_emag
    emag.fail_next("html_200", route="product_offer/read")
    emag.fail_next("reset_mid_body", route="product_offer/read")
    emag.fail_next("429", headers={"X-RateLimit-Limit-3second": "3", "X-RateLimit-Remaining-3second": "0"})
    emag.fail_next("gzip_garbage", route="product_offer/read")
    emag.fail_next("iserror_null", route="product_offer/read")
    emag.fail_next("iserror_missing", route="product_offer/count")
    emag.fail_next("slow", route="product_offer/read", seconds=1.5)
    settings = settings_for(emag, emag_request_timeout_seconds=10.0)
    result = await sync_from_settings(clean_engine, settings)
    assert result["status"] == "completed", result
    assert result["failed"] == 0
    for account, offers in emag.catalogue.items():
        rows = await stored(clean_engine, account)
        assert sorted(rows) == sorted(o["id"] for o in offers)
        assert {r.sync_status for r in rows.values()} == {"synced"}
    spoilt = (await stored(clean_engine, "main"))[emag.catalogue["main"][137]["id"]]
    assert spoilt.raw_emag_data["family"] == [] and spoilt.sync_issue is None
    assert emag.take_fault("product_offer/read") is None  # every fault was met


@pytest.mark.parametrize(("body_style", "style"), [("top_level", "json"), ("data", "json-data"), ("form", "form")])
async def test_against_the_sandbox_in_each_body_style_detect_finds_it_and_a_full_sync_stores_everything(
    make_sandbox: Any, clean_engine: AsyncEngine, body_style: str, style: str
) -> None:
    from magflow.emag import detect_request_format

    sandbox = make_sandbox(products=250, body_style=body_style)
    values: dict[str, Any] = {"redis_url": None, "emag_max_attempts": 4}
    for account, (user, password) in sandbox.accounts.items():
        values.update({f"emag_{account}_username": user, f"emag_{account}_password": password})
        values[f"emag_{account}_base_url"] = sandbox.base_url
    settings = load_settings(**values)
    budget = InProcessRateBudget(FAST)
    for config in configured_accounts(settings).values():
        detection = await detect_request_format(config, budget)
        assert detection.found == style, detection
        await record_request_format(clean_engine, detection, "test")
    result = await sync_from_settings(clean_engine, settings)
    assert result["status"] == "completed", result
    for account in ("main", "fbe"):
        assert sorted(await stored(clean_engine, account)) == sorted(p["id"] for p in sandbox.state.truth(account))
