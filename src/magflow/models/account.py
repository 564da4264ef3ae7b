from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, BigInteger, DateTime, Identity, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from magflow.models.base import Base


class EmagAccountState(Base):
    """Per-account facts that outlive runs: the last verified full scan, the last connection check, and the
    request format (body style) detected for the account."""

    __tablename__ = "emag_account_state"

    account_type: Mapped[str] = mapped_column(String(8), primary_key=True)
    last_full_sync_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    last_full_sync_completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_successful_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_connection_status: Mapped[str | None] = mapped_column(String(32))
    last_connection_message: Mapped[str | None] = mapped_column(Text)
    last_connection_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The body style `magflow test-connection --detect` found eMAG to honour (json, json-data, form), when, and
    # how: each style tried with what it showed, the catalogue size, and who ran the detection.
    request_format: Mapped[str | None] = mapped_column(String(16))
    request_format_detected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    request_format_detection: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class EmagSyncSeen(Base):
    """Offer ids a full scan has read so far; it lets a resumed scan sweep missing products correctly."""

    __tablename__ = "emag_sync_seen"

    scan_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    account_type: Mapped[str] = mapped_column(String(8), primary_key=True)
    emag_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class EmagPageRead(Base):
    """One page of offers read from eMAG: which offers it listed and when (a product's "last seen")."""

    __tablename__ = "emag_page_reads"
    __table_args__ = (
        Index("ix_emag_page_reads_account_read_at", "account_type", "read_at"),
        Index("ix_emag_page_reads_ids", "emag_ids", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    account_type: Mapped[str] = mapped_column(String(8), nullable=False)
    sync_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    emag_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), nullable=False)


class ApiToken(Base):
    """A REST API bearer token; only its SHA-256 is stored. A revoked token's row stays (with its name, for the
    record) when a new token takes the name: only one live token per name."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        Index("uq_api_tokens_live_name", "name", unique=True, postgresql_where=text("revoked_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    scope: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # `magflow token create --expires-in`: after this the token is refused (401 token_expired); None: never.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class HealthCheck(Base):
    """The result of one periodic health check."""

    __tablename__ = "emag_health_checks"
    __table_args__ = (Index("ix_emag_health_checks_checked_at", "checked_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
