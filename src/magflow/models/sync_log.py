from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from magflow.models.base import Base

SYNC_STATUSES = ("queued", "running", "completed", "partial", "failed", "interrupted", "cancelled")
FINISHED_STATUSES = ("completed", "partial", "failed", "interrupted", "cancelled")


class EmagSyncLog(Base):
    """One sync run (one or both accounts): what was asked, what happened, and the numbers."""

    __tablename__ = "emag_sync_logs"
    __table_args__ = (
        Index("ix_emag_sync_logs_started", "sync_type", "started_at"),
        Index("ix_emag_sync_logs_status", "status", "account_type"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    sync_type: Mapped[str] = mapped_column(String(16), nullable=False, server_default="products")
    account_type: Mapped[str] = mapped_column(String(8), nullable=False)
    operation: Mapped[str] = mapped_column(String(32), nullable=False)
    mode: Mapped[str] = mapped_column(String(16), nullable=False)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'"))
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="queued")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    total_items: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    processed_items: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created_items: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    updated_items: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    unchanged_items: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failed_items: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    missing_items: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    conflicts: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    pages_total: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    pages_processed: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    api_requests: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    api_retries: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    rate_limit_hits: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    rate_limit_wait_seconds: Mapped[float] = mapped_column(Float, nullable=False, server_default="0")
    errors: Mapped[list[Any]] = mapped_column(JSONB, nullable=False, server_default=text("'[]'"))
    error_message: Mapped[str | None] = mapped_column(Text)
    triggered_by: Mapped[str] = mapped_column(String(64), nullable=False, server_default="manual")
    resumed_from: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    resume_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    worker: Mapped[str | None] = mapped_column(String(128))
    cancel_requested: Mapped[bool] = mapped_column(nullable=False, server_default=text("false"))
