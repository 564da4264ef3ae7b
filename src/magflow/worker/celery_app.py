"""The Celery app, configured from the settings: broker and result backend from the Redis URL.

`celery -A magflow.worker worker --beat --loglevel=info` runs a worker with the schedule; run exactly one
beat per deployment (see the README, "Workers and schedules").
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging

from magflow.config import Settings, get_settings
from magflow.observability.logging import configure_logging
from magflow.worker.schedule import build_beat_schedule

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"


def celery_config(settings: Settings) -> dict[str, Any]:
    broker = settings.broker_url or DEFAULT_BROKER_URL
    hard_limit = settings.magflow_task_time_limit
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
        "timezone": settings.magflow_schedule_timezone,
        "enable_utc": True,
        "beat_schedule": build_beat_schedule(settings),
    }


@setup_logging.connect  # type: ignore[untyped-decorator]
def _logging(**_: Any) -> None:
    """Our log file and redaction instead of Celery taking over the root logger."""
    configure_logging(get_settings())


def create_app(settings: Settings | None = None) -> Celery:
    app = Celery("magflow", include=["magflow.worker.tasks"])
    app.conf.update(celery_config(settings or get_settings()))
    return app


app = create_app()
