from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from magflow.models.base import Base

Money = Numeric(16, 4)


class EmagProduct(Base):
    """One eMAG offer of one seller account: typed columns for what people query, plus the raw payload."""

    __tablename__ = "emag_products_v2"
    __table_args__ = (
        UniqueConstraint("account_type", "emag_id", name="uq_emag_products_v2_account_offer"),
        Index("ix_emag_products_v2_sku", "sku"),
        Index("ix_emag_products_v2_part_number_key", "part_number_key"),
        Index("ix_emag_products_v2_account_status", "account_type", "status", "sync_status"),
        Index(
            "ix_emag_products_v2_search_trgm",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    account_type: Mapped[str] = mapped_column(String(8), nullable=False)
    emag_id: Mapped[int] = mapped_column(BigInteger, nullable=False)

    sku: Mapped[str | None] = mapped_column(String(64))
    part_number_key: Mapped[str | None] = mapped_column(String(64))
    ean: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    name: Mapped[str | None] = mapped_column(Text)
    brand: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    category_id: Mapped[int | None] = mapped_column(BigInteger)
    vendor_category_id: Mapped[int | None] = mapped_column(BigInteger)
    family: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    warranty: Mapped[int | None] = mapped_column(Integer)
    images: Mapped[list[Any] | None] = mapped_column(JSONB)
    main_image_url: Mapped[str | None] = mapped_column(Text)
    characteristics: Mapped[list[Any] | None] = mapped_column(JSONB)
    attachments: Mapped[list[Any] | None] = mapped_column(JSONB)

    sale_price: Mapped[Decimal | None] = mapped_column(Money)
    recommended_price: Mapped[Decimal | None] = mapped_column(Money)
    min_sale_price: Mapped[Decimal | None] = mapped_column(Money)
    max_sale_price: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    vat_id: Mapped[int | None] = mapped_column(Integer)
    green_tax: Mapped[Decimal | None] = mapped_column(Money)

    stock: Mapped[list[Any] | None] = mapped_column(JSONB)
    general_stock: Mapped[int | None] = mapped_column(Integer)
    estimated_stock: Mapped[int | None] = mapped_column(Integer)
    handling_time: Mapped[list[Any] | None] = mapped_column(JSONB)
    supply_lead_time: Mapped[int | None] = mapped_column(Integer)

    status: Mapped[int | None] = mapped_column(SmallInteger)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    validation_status: Mapped[int | None] = mapped_column(SmallInteger)
    validation_status_description: Mapped[str | None] = mapped_column(Text)
    translation_validation_status: Mapped[int | None] = mapped_column(SmallInteger)
    offer_validation_status: Mapped[int | None] = mapped_column(SmallInteger)
    offer_validation_status_description: Mapped[str | None] = mapped_column(Text)
    doc_errors: Mapped[list[Any] | None] = mapped_column(JSONB)
    ownership: Mapped[int | None] = mapped_column(SmallInteger)

    number_of_offers: Mapped[int | None] = mapped_column(Integer)
    buy_button_rank: Mapped[int | None] = mapped_column(Integer)
    best_offer_sale_price: Mapped[Decimal | None] = mapped_column(Money)
    best_offer_recommended_price: Mapped[Decimal | None] = mapped_column(Money)

    genius_eligibility: Mapped[int | None] = mapped_column(SmallInteger)
    genius_eligibility_type: Mapped[int | None] = mapped_column(SmallInteger)
    genius_computed: Mapped[int | None] = mapped_column(SmallInteger)

    safety_information: Mapped[str | None] = mapped_column(Text)
    gpsr_manufacturer: Mapped[Any] = mapped_column(JSONB, nullable=True)
    gpsr_eu_representative: Mapped[Any] = mapped_column(JSONB, nullable=True)

    raw_emag_data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    search_text: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    computed_fields: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    # {field: {"base": last synced eMAG value, "edited_at": iso, "edited_by": actor}}
    local_edits: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))

    sync_status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="synced")
    # Why the latest eMAG payload was quarantined (sync_status 'failed'), or what was cleaned from it.
    sync_issue: Mapped[str | None] = mapped_column(Text)
    is_missing: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    missing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_synced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    emag_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_sync_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
