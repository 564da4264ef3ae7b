"""API token expiry; revoked tokens keep their rows when the name is taken again

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00

`expires_at` is set by `magflow token create --expires-in`; a token past it is refused. A name was unique over
all rows, so creating a token under a revoked token's name deleted the revoked row (and its record of when it was
created, last used and revoked); now only one *live* token may hold a name, and revoked rows stay.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_constraint("uq_api_tokens_name", "api_tokens", type_="unique")
    op.create_index(
        "uq_api_tokens_live_name",
        "api_tokens",
        ["name"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_api_tokens_live_name", table_name="api_tokens")
    # Names unique over all rows again: the revoked rows that share a name with a newer row go.
    op.execute(
        "DELETE FROM api_tokens old USING api_tokens newer "
        "WHERE old.name = newer.name AND old.id < newer.id AND old.revoked_at IS NOT NULL"
    )
    op.create_unique_constraint("uq_api_tokens_name", "api_tokens", ["name"])
    op.drop_column("api_tokens", "expires_at")
