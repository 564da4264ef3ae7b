"""The sync engine: EmagProductSyncService and what it is driven with."""

from magflow.sync.enums import ConflictResolutionStrategy, SyncMode, SyncStatus
from magflow.sync.plan import SelectiveFilters, SyncRequestError
from magflow.sync.runs import SyncAlreadyRunningError
from magflow.sync.service import EmagProductSyncService, request_cancel

__all__ = [
    "ConflictResolutionStrategy",
    "EmagProductSyncService",
    "SelectiveFilters",
    "SyncAlreadyRunningError",
    "SyncMode",
    "SyncRequestError",
    "SyncStatus",
    "request_cancel",
]
