"""The beat schedule of the user's guide, built from the settings.

eMAG asks integrators not to fire at round clock times (everyone's cron hits :00), so every entry starts a
few minutes past: incremental syncs at minute 7, the health check at 11/26/41/56, the full sync at 02:17 and
the cleanup at 03:13. The full sync is not at 02:07 so that it does not collide with the hourly incremental
sync, which would take the account's lock first and make the full sync wait.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from celery.schedules import crontab, schedule

from magflow.config import Settings

INCREMENTAL_OFFSET_MINUTES = 7
INCREMENTAL_MAX_PAGES = 10
HEALTH_CHECK_MINUTES = 15
HEALTH_CHECK_OFFSET_MINUTES = 11
FULL_SYNC_AT = (2, 17)
CLEANUP_AT = (3, 13)

INCREMENTAL_ENTRY = "emag-incremental-product-sync"
FULL_ENTRY = "emag-full-product-sync"
CLEANUP_ENTRY = "emag-cleanup-sync-logs"
HEALTH_ENTRY = "emag-health-check"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TASKS = "magflow.worker.tasks"


class EveryMinutes(schedule):  # type: ignore[misc]  # celery is untyped
    """Every `minutes` minutes on a fixed clock grid shifted by `offset` minutes.

    Unlike celery's plain interval (which counts from the last run, so it drifts to whatever time beat
    started), the runs land on the same wall-clock minutes every day: every 60 minutes at offset 7 is
    :07 of each hour, every 30 at offset 7 is :07 and :37.
    """

    def __init__(self, minutes: int, offset: int = 0, app: Any = None) -> None:
        if minutes < 1:
            raise ValueError("minutes must be at least 1")
        self.minutes = minutes
        self.offset = offset % minutes
        super().__init__(run_every=timedelta(minutes=minutes), app=app)

    def next_after(self, moment: datetime) -> datetime:
        """The first run strictly after `moment` (an aware datetime)."""
        period = timedelta(minutes=self.minutes)
        origin = _EPOCH + timedelta(minutes=self.offset)
        steps = (moment - origin) // period + 1
        return origin + steps * period

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        last: datetime = self.maybe_make_aware(last_run_at)
        now: datetime = self.maybe_make_aware(self.now())
        return self.next_after(last) - now

    def __repr__(self) -> str:
        return f"<every {self.minutes} minutes at offset {self.offset}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EveryMinutes):
            return (self.minutes, self.offset) == (other.minutes, other.offset)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.minutes, self.offset))

    def __reduce__(self) -> Any:
        return self.__class__, (self.minutes, self.offset)


def incremental_offset(interval_minutes: int) -> int:
    """Minute 7 past the grid, or the middle of a shorter interval (an offset must be below the interval)."""
    if interval_minutes > INCREMENTAL_OFFSET_MINUTES:
        return INCREMENTAL_OFFSET_MINUTES
    return interval_minutes // 2


def build_beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The guide's default schedule; `EMAG_ENABLE_SCHEDULED_SYNC=false` leaves out the product syncs.

    Every entry expires when its next run is due, so runs that a busy or stopped worker never picked up
    do not pile up and then fire all at once.
    """
    interval = settings.emag_sync_interval_minutes
    beat: dict[str, dict[str, Any]] = {}
    if settings.emag_enable_scheduled_sync:
        beat[INCREMENTAL_ENTRY] = {
            "task": f"{_TASKS}.scheduled_incremental_sync",
            "schedule": EveryMinutes(interval, incremental_offset(interval)),
            "kwargs": {"max_pages": INCREMENTAL_MAX_PAGES},
            "options": {"expires": interval * 60},
        }
        beat[FULL_ENTRY] = {
            "task": f"{_TASKS}.scheduled_full_sync",
            "schedule": crontab(hour=FULL_SYNC_AT[0], minute=FULL_SYNC_AT[1]),
            "options": {"expires": 12 * 3600},
        }
    beat[CLEANUP_ENTRY] = {
        "task": f"{_TASKS}.cleanup_sync_logs",
        "schedule": crontab(hour=CLEANUP_AT[0], minute=CLEANUP_AT[1]),
        "kwargs": {"retention_days": settings.emag_main_log_retention},
        "options": {"expires": 12 * 3600},
    }
    beat[HEALTH_ENTRY] = {
        "task": f"{_TASKS}.health_check",
        "schedule": EveryMinutes(HEALTH_CHECK_MINUTES, HEALTH_CHECK_OFFSET_MINUTES),
        "options": {"expires": HEALTH_CHECK_MINUTES * 60},
    }
    return beat
