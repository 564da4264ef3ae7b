"""product sync_issue, seen-set timestamps, page reads

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 04:00:00

`sync_issue` says why a product's latest eMAG payload was quarantined (sync_status 'failed'), or what was
cleaned from it before it was stored. `emag_sync_seen.seen_at` lets the seen-sets of abandoned scans be
cleaned by age. `emag_page_reads` records, one row per page read, which offers eMAG listed when: a product's
"last seen" without rewriting unchanged product rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("emag_products_v2", sa.Column("sync_issue", sa.Text(), nullable=True))
    op.add_column(
        "emag_sync_seen",
        sa.Column("seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_table(
        "emag_page_reads",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("account_type", sa.String(length=8), nullable=False),
        sa.Column("sync_id", sa.UUID(), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("emag_ids", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emag_page_reads")),
    )
    op.create_index("ix_emag_page_reads_account_read_at", "emag_page_reads", ["account_type", "read_at"])
    op.create_index("ix_emag_page_reads_ids", "emag_page_reads", ["emag_ids"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_index("ix_emag_page_reads_ids", table_name="emag_page_reads", postgresql_using="gin")
    op.drop_index("ix_emag_page_reads_account_read_at", table_name="emag_page_reads")
    op.drop_table("emag_page_reads")
    op.drop_column("emag_sync_seen", "seen_at")
    op.drop_column("emag_products_v2", "sync_issue")
