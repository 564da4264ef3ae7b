"""the request format detected per account

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:00:00

`magflow test-connection --detect` finds the body style eMAG honours for an account (json, json-data or form) and
records it here, with when and how it was found; a sync uses it unless EMAG_<ACCOUNT>_REQUEST_FORMAT is set.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("emag_account_state", sa.Column("request_format", sa.String(length=16), nullable=True))
    op.add_column(
        "emag_account_state", sa.Column("request_format_detected_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "emag_account_state",
        sa.Column("request_format_detection", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("emag_account_state", "request_format_detection")
    op.drop_column("emag_account_state", "request_format_detected_at")
    op.drop_column("emag_account_state", "request_format")
