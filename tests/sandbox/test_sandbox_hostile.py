"""Hostile mode: a seeded fraction of offers carries values a careless client chokes on, over real HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from magflow.sandbox import SandboxState, paths
from magflow.sandbox.hostile import DEFAULT_HOSTILE_KINDS, HOSTILE_KINDS, LONG_TEXT_CHARS
from magflow.testing.sandbox import Sandbox, read, read_all


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_IS_HOSTILE: dict[str, Callable[[Any], bool]] = {
    "nul": lambda v: "\x00" in v,
    "surrogate": lambda v: "\ud83d" in v,
    "nul_key": lambda v: any("\x00" in key for key in v),
    "surrogate_key": lambda v: any("\ud83d" in key for key in v),
    "too_long": lambda v: len(v) > 64 or (len(v) > 3 and v.startswith("RON")),
    "huge_price": lambda v: v >= 10**12,
    "range": lambda v: not -(2**31) <= v < 2**31 or v > 32767,
    "long_text": lambda v: len(v) >= LONG_TEXT_CHARS,
    "deep": lambda v: _depth(v) >= 50,
    "spaced_number": lambda v: isinstance(v, str) and v != v.strip() and float(v.replace(" ", "")) >= 0,
    "nan": lambda v: v in ("NaN", "Infinity", "-Infinity"),
    "no_id": lambda v: v == "",
}


def _assert_hostile(row: dict[str, Any], labels: list[str]) -> None:
    for label in labels:
        kind, path = label.split(":", 1)
        value = paths.get(row, paths.parse(path))
        assert value is not paths.MISSING and _IS_HOSTILE[kind](value), (label, row["id"])


def test_about_one_offer_in_fifty_is_hostile_and_the_seed_picks_which(make_sandbox: Any) -> None:
    sandbox = make_sandbox(products=1000, hostile_rate=0.02, hostile_seed=7)
    hostile = {account: sandbox.state.hostile_offers(account) for account in ("main", "fbe")}
    for account, found in hostile.items():
        assert 10 <= len(found) <= 35, f"{account}: {len(found)} hostile offers of 1000"
        with sandbox.client(account) as http:
            rows = {row["id"]: row for row in read_all(http)}
        assert len(rows) == 1000
        for offer_id, labels in found.items():
            _assert_hostile(rows[offer_id], labels)
    again = SandboxState(products_per_account=1000, seed=1, hostile_rate=0.02, hostile_seed=7)
    other = SandboxState(products_per_account=1000, seed=1, hostile_rate=0.02, hostile_seed=8)
    assert again.hostile_offers("main") == hostile["main"]
    assert again.truth("main") == sandbox.state.truth("main")
    assert other.hostile_offers("main").keys() != hostile["main"].keys()


def test_every_hostile_value_is_on_the_wire_where_its_label_says(make_sandbox: Any) -> None:
    sandbox = make_sandbox(products=300, hostile_rate=1.0, hostile_seed=9)
    found = sandbox.state.hostile_offers("main")
    assert len(found) == 300
    assert {label.split(":")[0] for labels in found.values() for label in labels} == set(DEFAULT_HOSTILE_KINDS)
    with sandbox.client() as http:
        rows = read_all(http)
    for row, (offer_id, labels) in zip(rows, found.items(), strict=True):
        assert row["id"] == offer_id
        _assert_hostile(row, labels)


def test_hostile_values_reach_the_wire_as_json_escapes_that_stdlib_json_reads(make_sandbox: Any) -> None:
    sandbox = make_sandbox(products=1000, hostile_rate=0.05, hostile_seed=3)
    with sandbox.client() as http:
        pages = [read(http, currentPage=page, itemsPerPage=100).content for page in range(1, 11)]
    wire = b"".join(pages)
    assert b"\\u0000" in wire and b"\\ud83d" in wire
    assert b"\x00" not in wire, "NUL travels escaped, never as a raw byte"
    rows = [row for page in pages for row in json.loads(page)["results"]]
    assert rows == sandbox.state.truth("main")
    surrogate_pages = [page for page in pages if b"\\ud83d" in page]
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(surrogate_pages[0])  # what makes a strict parser refuse the whole page


def test_every_kind_appears_across_seeds_at_any_depth() -> None:
    labels: set[str] = set()
    for seed in range(1, 6):
        state = SandboxState(products_per_account=1000, seed=seed, hostile_rate=0.02)
        for account in ("main", "fbe"):
            labels |= {label for found in state.hostile_offers(account).values() for label in found}
    kinds = {label.split(":")[0] for label in labels}
    assert kinds == set(DEFAULT_HOSTILE_KINDS)
    assert "no_id" not in kinds, "an offer without an id is opt-in"
    assert {"nul:description", "nul:offer_details.notes[0]", "range:general_stock"} <= labels
    assert any(label.count(".") >= 3 for label in labels), "hostile values sit deep in unknown keys too"


def test_hostile_values_survive_a_read_by_id_with_its_gpsr_details(make_sandbox: Any) -> None:
    sandbox = make_sandbox(products=300, hostile_rate=0.1, hostile_seed=5)
    found = sandbox.state.hostile_offers("fbe")
    with sandbox.client("fbe") as http:
        for offer_id, labels in list(found.items())[:15]:
            (row,) = read(http, id=offer_id).json()["results"]
            _assert_hostile(row, labels)
            assert isinstance(row["manufacturer"], list)


def test_an_offer_without_an_id_is_a_kind_of_its_own_and_off_by_default(make_sandbox: Any) -> None:
    sandbox = make_sandbox(products=100, hostile_rate=0.1, hostile_seed=2, hostile_kinds=HOSTILE_KINDS)
    assert not any(
        "no_id:id" in labels
        for seed in range(1, 4)
        for labels in SandboxState(products_per_account=300, seed=seed, hostile_rate=0.5)
        .hostile_offers("main")
        .values()
    )
    sandbox.state.set_hostile(1.0, seed=2, kinds=["no_id"])
    with sandbox.client() as http:
        rows = read_all(http)
        (by_id,) = read(http, id=100_001).json()["results"]
    assert {row["id"] for row in rows} == {""} and len(rows) == 100
    assert by_id["id"] == "" and by_id["part_number"] == rows[0]["part_number"]
    assert set(sandbox.state.hostile_offers("main")[100_001]) == {"no_id:id"}


def test_setting_a_field_or_mutating_it_replaces_its_hostile_value(make_sandbox: Any) -> None:
    sandbox = make_sandbox(products=300, hostile_rate=1.0, hostile_seed=4, hostile_kinds=["range"])
    state = sandbox.state
    on_status = [i for i, labels in state.hostile_offers("main").items() if "range:status" in labels]
    assert on_status
    state.set_field("main", on_status[0], "status", 1)
    assert "range:status" not in state.hostile_offers("main").get(on_status[0], [])
    state.mutate("main", 300, fields=["status", "stock"])
    left = [label for labels in state.hostile_offers("main").values() for label in labels]
    touched = ("status", "stock", "general_stock", "estimated_stock")
    assert left and not any(label.split(":")[1].split("[")[0] in touched for label in left)
    with sandbox.client() as http:
        rows = read_all(http)
    assert all(row["status"] in (0, 1) and isinstance(row["stock"][0]["value"], int) for row in rows)


def test_hostile_mode_is_set_at_runtime_in_python_and_over_the_control_api(sandbox: Sandbox) -> None:
    with sandbox.control() as control, sandbox.client() as http:
        clean = read_all(http)
        quirks = control.post("/quirks", json={"hostile_rate": 0.05, "hostile_seed": 11}).json()
        assert quirks["hostile_rate"] == 0.05 and quirks["hostile_seed"] == 11
        listed = control.post("/main/hostile").json()
        assert listed == {str(i): labels for i, labels in sandbox.state.hostile_offers("main").items()}
        spoiled = read_all(http)
        changed = {row["id"] for row, before in zip(spoiled, clean, strict=True) if row != before}
        assert changed == {int(i) for i in listed}
        assert control.post("/main/truth").json() == spoiled
        assert control.post("/quirks", json={"hostile_rate": 2}).status_code == 400
        sandbox.state.set_hostile(0.0)
        assert read_all(http) == clean and control.post("/main/hostile").json() == {}


def test_the_shared_sandbox_is_clean_again_after_a_reset(sandbox: Sandbox) -> None:
    sandbox.state.set_quirks(hostile_rate=0.5, count_lag=3, listing_order="modified")
    sandbox.state.reset()
    assert sandbox.state.hostile_offers("main") == {}
    assert (sandbox.state.quirks.count_lag, sandbox.state.quirks.listing_order) == (0, "id")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_magflow_sandbox_hostile_rate_and_seed_replay_the_same_offers(tmp_path: Path) -> None:
    port = _free_port()
    magflow = Path(sys.executable).with_name("magflow")
    command = [str(magflow), "sandbox", "--port", str(port), "--products", "200", "--seed", "3"]
    command += ["--hostile-rate", "0.1", "--no-rate-limit"]
    log = (tmp_path / "sandbox.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1"})
    try:
        headers = {"X-Sandbox-Token": "sandbox-control"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/_sandbox", headers=headers) as control:
            deadline = time.monotonic() + 30
            while True:
                try:
                    listed = control.post("/fbe/hostile").json()
                    break
                except httpx.TransportError:
                    assert process.poll() is None and time.monotonic() < deadline, (
                        tmp_path / "sandbox.log"
                    ).read_text()
                    time.sleep(0.1)
        expected = SandboxState(products_per_account=200, seed=3, hostile_rate=0.1).hostile_offers("fbe")
        assert listed == {str(i): labels for i, labels in expected.items()} and listed
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
