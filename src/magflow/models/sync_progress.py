from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, String, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from magflow.models.base import Base


class EmagSyncProgress(Base):
    """Live progress and the resume checkpoint of one account inside one sync run."""

    __tablename__ = "emag_sync_progress"
    __table_args__ = (UniqueConstraint("sync_id", "account_type", name="uq_emag_sync_progress_run_account"),)

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    sync_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("emag_sync_logs.id", ondelete="CASCADE"), nullable=False
    )
    account_type: Mapped[str] = mapped_column(String(8), nullable=False)
    mode: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="running")
    current_page: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    total_pages: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    current_item: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    total_items: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    percentage: Mapped[float] = mapped_column(Float, nullable=False, server_default="0")
    items_per_second: Mapped[float] = mapped_column(Float, nullable=False, server_default="0")
    estimated_completion_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_items: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    updated_items: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    unchanged_items: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failed_items: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    # {"next_page": int, "items_per_page": int, "filters": {...}, "scan_started_at": iso, "pass": int}
    checkpoint: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'"))
    last_error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
