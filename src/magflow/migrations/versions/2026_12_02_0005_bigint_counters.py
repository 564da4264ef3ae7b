"""Sync counters as BIGINT

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 14:00:00

A run's totals come from eMAG's counts, summed over accounts (and over the filter sets of a selective sync):
an INTEGER counter overflowed on a count past two billion and the database refused to close the run, which
stayed `running`. Counts are clamped when they are read (magflow.emag.payloads.MAX_COUNT); BIGINT counters keep
their sums exact. Each table is rewritten once (one ALTER TABLE per table); both are small.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = {
    "emag_sync_logs": (
        "total_items", "processed_items", "created_items", "updated_items", "unchanged_items", "failed_items",
        "missing_items", "conflicts", "pages_total", "pages_processed", "api_requests", "api_retries",
        "rate_limit_hits", "resume_count",
    ),
    "emag_sync_progress": (
        "current_page", "total_pages", "current_item", "total_items", "created_items", "updated_items",
        "unchanged_items", "failed_items",
    ),
}  # fmt: skip
INT_MAX = 2**31 - 1


def upgrade() -> None:
    for table, columns in COUNTERS.items():
        changes = ", ".join(f"ALTER COLUMN {column} TYPE BIGINT" for column in columns)
        op.execute(f"ALTER TABLE {table} {changes}")


def downgrade() -> None:
    # A value past INTEGER's range is kept as INTEGER's largest rather than failing the downgrade.
    for table, columns in COUNTERS.items():
        changes = ", ".join(
            f"ALTER COLUMN {column} TYPE INTEGER USING LEAST({column}, {INT_MAX})::integer" for column in columns
        )
        op.execute(f"ALTER TABLE {table} {changes}")
