from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, Index, String, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from magflow.models.base import Base


class EmagProductChange(Base):
    """The audit trail: a product created, a field changed (old -> new), a product gone missing."""

    __tablename__ = "emag_product_changes"
    __table_args__ = (
        Index("ix_emag_product_changes_product", "product_id", "changed_at"),
        Index("ix_emag_product_changes_sync", "sync_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    account_type: Mapped[str] = mapped_column(String(8), nullable=False)
    emag_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    change_type: Mapped[str] = mapped_column(String(24), nullable=False)
    field: Mapped[str | None] = mapped_column(String(64))
    old_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    new_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    source: Mapped[str] = mapped_column(String(40), nullable=False)
    sync_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    actor: Mapped[str | None] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EmagProductConflict(Base):
    """A field changed both locally and on eMAG since the last sync, kept for an operator (manual)."""

    __tablename__ = "emag_product_conflicts"
    __table_args__ = (Index("ix_emag_product_conflicts_open", "status", "account_type"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    account_type: Mapped[str] = mapped_column(String(8), nullable=False)
    emag_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    field: Mapped[str] = mapped_column(String(64), nullable=False)
    base_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    local_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    emag_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="open")
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolved_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    sync_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    detected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(64))
