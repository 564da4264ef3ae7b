"""The Celery app, configured from the settings: broker and result backend from the Redis URL.

`celery -A magflow.worker worker --beat --loglevel=info` runs a worker with the schedule; run exactly one
beat per deployment (see docs/worker.md).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from magflow.config import Settings, get_settings
from magflow.worker.schedule import build_beat_schedule

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
DEFAULT_TIMEZONE = "Europe/Bucharest"
# A full sync of a very large catalogue (100,000 offers is about 1,000 pages at 3 requests a second, plus
# retries and eMAG's slow hours) stays well under four hours; a run that exceeds it is stopped and resumed.
DEFAULT_TIME_LIMIT_SECONDS = 4 * 3600


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def celery_config(settings: Settings) -> dict[str, Any]:
    broker = settings.broker_url or DEFAULT_BROKER_URL
    hard_limit = _int_env("MAGFLOW_TASK_TIME_LIMIT", DEFAULT_TIME_LIMIT_SECONDS)
    return {
        "broker_url": broker,
        "result_backend": settings.redis_url or broker,
        "broker_connection_retry_on_startup": True,
        # The Redis broker hands an unacknowledged task to another worker after the visibility timeout,
        # so it must outlast the longest task, or a live sync would be delivered twice.
        "broker_transport_options": {"visibility_timeout": hard_limit + 3600},
        "result_backend_transport_options": {"visibility_timeout": hard_limit + 3600},
        "result_expires": 24 * 3600,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # Acknowledge after the task finished: a worker that dies mid-sync leaves the task to be redelivered,
        # and the redelivered run resumes from the checkpoint.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": hard_limit,
        # The soft limit stops the sync a little earlier, so it ends cleanly and the next run resumes it.
        "task_soft_time_limit": hard_limit - min(300, hard_limit // 10),
        "task_track_started": True,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "timezone": os.environ.get("MAGFLOW_SCHEDULE_TIMEZONE", DEFAULT_TIMEZONE),
        "enable_utc": True,
        "beat_schedule": build_beat_schedule(settings),
    }


def create_app(settings: Settings | None = None) -> Celery:
    app = Celery("magflow", include=["magflow.worker.tasks"])
    app.conf.update(celery_config(settings or get_settings()))
    return app


app = create_app()
