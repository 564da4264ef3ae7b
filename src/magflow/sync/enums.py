from __future__ import annotations

from enum import StrEnum


class SyncMode(StrEnum):
    INCREMENTAL = "incremental"
    FULL = "full"
    SELECTIVE = "selective"


class ConflictResolutionStrategy(StrEnum):
    EMAG_PRIORITY = "emag_priority"
    LOCAL_PRIORITY = "local_priority"
    NEWEST_WINS = "newest_wins"
    MANUAL = "manual"


class SyncStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"
