"""The product sync against a reference model: Hypothesis drives eMAG (the sandbox over HTTP), an operator and
syncs of every mode against real PostgreSQL, and after every step the database must be what the documented rules
allow (tests/model/reference.py).

Why Hypothesis' stateful runner in a worker thread: its rules are synchronous, while the engine, the database and
the fixtures live on the test's event loop; each rule hands its coroutines to that loop and waits. Shrinking is off
by default: an example is seconds of real I/O, and timing varies between replays.

CI runs a bounded number of examples from a fixed seed (MAGFLOW_MODEL_SEED, _EXAMPLES, _STEPS). A soak
(`scripts/soak --minutes N --seed S`, i.e. MAGFLOW_SOAK_SECONDS / MAGFLOW_SOAK_SEED) runs batches with seeds S, S+1,
... until the time is up and prints the seed of a failing batch: `scripts/soak --seed <that seed>` replays it. Since
timing differs between runs, the exact steps a failure printed can be replayed too (MAGFLOW_MODEL_REPLAY_STEPS).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as use_seed
from hypothesis.stateful import run_state_machine_as_test
from sqlalchemy.ext.asyncio import AsyncEngine

from .harness import Harness
from .machine import SyncMachine

SEED = int(os.environ.get("MAGFLOW_SOAK_SEED", os.environ.get("MAGFLOW_MODEL_SEED", "20261202")))
REPLAY = "MAGFLOW_SOAK_SEED" in os.environ  # one soak batch, replayed by its seed
EXAMPLES = int(os.environ.get("MAGFLOW_MODEL_EXAMPLES", "6"))
STEPS = int(os.environ.get("MAGFLOW_MODEL_STEPS", "30"))
SOAK_SECONDS = float(os.environ.get("MAGFLOW_SOAK_SECONDS", "0"))
SOAK_EXAMPLES = int(os.environ.get("MAGFLOW_SOAK_EXAMPLES", "8"))
SOAK_STEPS = int(os.environ.get("MAGFLOW_SOAK_STEPS", "30"))
SHRINK = os.environ.get("MAGFLOW_MODEL_SHRINK") == "1"
STEPS_FILE = os.environ.get("MAGFLOW_MODEL_REPLAY_STEPS")  # a file holding the steps a failure printed
VERBOSE = os.environ.get("MAGFLOW_MODEL_VERBOSE") == "1" or SOAK_SECONDS > 0


def _say(line: str) -> None:
    print(line, file=sys.__stdout__ if VERBOSE else sys.stdout, flush=True)


def run_batch(harness: Harness, seed: int, examples: int, steps: int) -> None:
    """`examples` examples of up to `steps` steps each, all chosen by `seed`."""
    machine = type("SyncMachineRun", (SyncMachine,), {"harness": harness})
    use_seed(seed)(machine)
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if SHRINK else [])
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            phases=phases,
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
            print_blob=False,
            verbosity=Verbosity.normal,
        ),
    )


def replay_steps(harness: Harness, path: str, say: Callable[[str], None]) -> None:
    """Run the steps Hypothesis printed for a failure (`state.rule(...)` lines, pytest's `E` prefixes allowed)."""
    machine = type("SyncMachineRun", (SyncMachine,), {"harness": harness})()
    with open(path, encoding="utf-8") as lines:
        steps = [line.strip().removeprefix("E").strip() for line in lines]
    say(f"replaying {sum(1 for s in steps if s.startswith('state.'))} steps from {path}")
    for step in steps:
        if step.startswith("state.") and step != "state.teardown()":
            eval(step, {"state": machine})  # the printed step is a call of the machine's rule: nothing else runs
            machine.the_database_agrees_with_the_model()
    machine.teardown()


def drive(harness: Harness, say: Callable[[str], None]) -> None:
    if STEPS_FILE:
        replay_steps(harness, STEPS_FILE, say)
        return
    if SOAK_SECONDS <= 0:
        examples, steps = (SOAK_EXAMPLES, SOAK_STEPS) if REPLAY else (EXAMPLES, STEPS)
        say(f"model test: seed {SEED}, {examples} examples of up to {steps} steps")
        _replayable(harness, SEED, examples, steps, say)
        return
    deadline = time.monotonic() + SOAK_SECONDS
    batch = 0
    while True:
        seed = SEED + batch
        say(f"soak: batch {batch} seed {seed} ({SOAK_EXAMPLES} examples of up to {SOAK_STEPS} steps)")
        _replayable(harness, seed, SOAK_EXAMPLES, SOAK_STEPS, say)
        batch += 1
        left = deadline - time.monotonic()
        say(f"soak: {harness.steps} steps so far, {max(left, 0) / 60:.1f} minutes left")
        if left <= 0:
            break


def _replayable(harness: Harness, seed: int, examples: int, steps: int, say: Callable[[str], None]) -> None:
    started = time.monotonic()
    try:
        run_batch(harness, seed, examples, steps)
    except BaseException as exc:
        replay = (
            f"model test failed with seed {seed} ({examples} examples of up to {steps} steps); replay with "
            f"`scripts/soak --seed {seed} --examples {examples} --steps {steps}`, or save the `state.` lines above "
            "in a file and run exactly them with `scripts/soak --replay-steps FILE`"
        )
        say(replay)
        exc.add_note(replay)
        raise
    finally:
        say(f"seed {seed}: {time.monotonic() - started:.0f} s, rules run so far: {_counts(harness.counts)}")
        say(f"strictness: {_counts(harness.stats)}")
        if harness.known:
            say(f"known defects met (xfail repros in test_found_bugs.py): {_counts(harness.known)}")


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))


@pytest.mark.slow
@pytest.mark.timeout(SOAK_SECONDS + 900 if SOAK_SECONDS else 600)
async def test_the_database_always_holds_what_the_reference_model_allows(
    engine: AsyncEngine, make_sandbox: Any, database_url: str
) -> None:
    sandbox = make_sandbox(products=60)
    harness = Harness(sandbox, engine, database_url, asyncio.get_running_loop(), log=_say if VERBOSE else _quiet)
    await asyncio.to_thread(drive, harness, _say)
    _say(f"model test passed: {harness.steps} steps; {_counts(harness.counts)}")
    if harness.known:
        _say(f"known defects met (xfail repros in test_found_bugs.py): {_counts(harness.known)}")


def _quiet(line: str) -> None:
    pass
