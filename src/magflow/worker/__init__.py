"""Workers and schedules on Celery: `celery -A magflow.worker worker --beat --loglevel=info`."""

from magflow.worker.celery_app import app, create_app

__all__ = ["app", "create_app"]
