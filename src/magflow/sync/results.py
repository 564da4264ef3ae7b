"""What one account's part of a run produced, and how unexpected errors are told in one line."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from magflow.sync.writer import PageOutcome, brief


@dataclass
class AccountResult:
    account: str
    status: str = "running"
    total_items: int = 0
    total_processed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    missing: int = 0
    conflicts: int = 0
    pages: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_message: str | None = None
    resumed_from: uuid.UUID | None = None

    def add(self, outcome: PageOutcome) -> None:
        self.created += outcome.created
        self.updated += outcome.updated
        self.unchanged += outcome.unchanged
        self.failed += outcome.failed
        self.conflicts += outcome.conflicts
        self.total_processed += outcome.processed
        self.errors.extend(outcome.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "total_items": self.total_items,
            "total_processed": self.total_processed,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "missing": self.missing,
            "conflicts": self.conflicts,
            "pages": self.pages,
            "errors": self.errors,
            "error_message": self.error_message,
            "resumed_from": str(self.resumed_from) if self.resumed_from else None,
        }


__all__ = ["AccountResult", "brief"]
