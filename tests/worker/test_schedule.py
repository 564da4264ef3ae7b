"""The beat schedule of the user's guide, and the two settings that change it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from magflow.config import load_settings
from magflow.worker.schedule import (
    CLEANUP_ENTRY,
    FULL_ENTRY,
    HEALTH_ENTRY,
    INCREMENTAL_ENTRY,
    EveryMinutes,
    build_beat_schedule,
)

from .conftest import Workers

TASKS = "magflow.worker.tasks"


def runs_between(schedule: EveryMinutes, start: datetime, hours: int) -> list[datetime]:
    runs, moment = [], start
    while (moment := schedule.next_after(moment)) < start + timedelta(hours=hours):
        runs.append(moment)
    return runs


def test_default_schedule_has_the_guides_entries_off_round_times() -> None:
    beat = build_beat_schedule(load_settings())
    assert set(beat) == {INCREMENTAL_ENTRY, FULL_ENTRY, CLEANUP_ENTRY, HEALTH_ENTRY}

    incremental = beat[INCREMENTAL_ENTRY]
    assert incremental["task"] == f"{TASKS}.scheduled_incremental_sync"
    assert incremental["kwargs"] == {"max_pages": 10}
    midnight = datetime(2026, 3, 2, tzinfo=UTC)
    hourly = runs_between(incremental["schedule"], midnight, 24)
    assert len(hourly) == 24 and {(r.minute, r.second) for r in hourly} == {(7, 0)}

    full = beat[FULL_ENTRY]
    assert full["task"] == f"{TASKS}.scheduled_full_sync"
    assert (full["schedule"].hour, full["schedule"].minute) == ({2}, {17})

    cleanup = beat[CLEANUP_ENTRY]
    assert cleanup["task"] == f"{TASKS}.cleanup_sync_logs"
    assert (cleanup["schedule"].hour, cleanup["schedule"].minute) == ({3}, {13})
    assert cleanup["kwargs"] == {"retention_days": 30}

    health = runs_between(beat[HEALTH_ENTRY]["schedule"], midnight, 2)
    assert beat[HEALTH_ENTRY]["task"] == f"{TASKS}.health_check"
    assert len(health) == 8 and {r.minute for r in health} == {11, 26, 41, 56}


def test_interval_and_retention_settings_change_the_schedule() -> None:
    beat = build_beat_schedule(load_settings(emag_sync_interval_minutes=30, emag_main_log_retention=7))
    runs = runs_between(beat[INCREMENTAL_ENTRY]["schedule"], datetime(2026, 3, 2, tzinfo=UTC), 3)
    assert [r.minute for r in runs] == [7, 37] * 3
    assert beat[CLEANUP_ENTRY]["kwargs"] == {"retention_days": 7}

    every_two_hours = build_beat_schedule(load_settings(emag_sync_interval_minutes=120))[INCREMENTAL_ENTRY]
    runs = runs_between(every_two_hours["schedule"], datetime(2026, 3, 2, tzinfo=UTC), 24)
    assert len(runs) == 12 and all(r.minute == 7 for r in runs)

    odd = build_beat_schedule(load_settings(emag_sync_interval_minutes=45))[INCREMENTAL_ENTRY]
    runs = runs_between(odd["schedule"], datetime(2026, 3, 2, tzinfo=UTC), 24)
    assert len(runs) == 32 and all(r.minute % 15 == 7 for r in runs)


def test_disabling_scheduled_sync_leaves_only_maintenance() -> None:
    beat = build_beat_schedule(load_settings(emag_enable_scheduled_sync=False))
    assert set(beat) == {CLEANUP_ENTRY, HEALTH_ENTRY}


PRINT_SCHEDULE = """
import json
from magflow.worker import app
print(json.dumps({name: [entry["task"], repr(entry["schedule"])] for name, entry in app.conf.beat_schedule.items()}))
"""


def _schedule_from_env(**env: str) -> dict[str, list[str]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EMAG_", "CELERY_"))}
    out = subprocess.run(
        [sys.executable, "-c", PRINT_SCHEDULE], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    result: dict[str, list[str]] = json.loads(out.stdout)
    return result


def test_the_celery_app_reads_the_schedule_settings_from_the_environment() -> None:
    configured = _schedule_from_env(EMAG_SYNC_INTERVAL_MINUTES="20")
    assert configured[INCREMENTAL_ENTRY] == [f"{TASKS}.scheduled_incremental_sync", "<every 20 minutes at offset 7>"]
    manual_only = _schedule_from_env(EMAG_ENABLE_SCHEDULED_SYNC="false")
    assert set(manual_only) == {CLEANUP_ENTRY, HEALTH_ENTRY}


def test_a_worker_started_with_beat_runs_the_scheduler(workers: Workers) -> None:
    log = workers.workers[0].tail(400)
    assert "beat: Starting..." in log
    assert "magflow.worker.tasks.run_sync" in log
