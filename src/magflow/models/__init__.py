"""Every ORM table of magflow, importable from one place."""

from magflow.models.account import ApiToken, EmagAccountState, EmagPageRead, EmagSyncSeen, HealthCheck
from magflow.models.audit import EmagProductChange, EmagProductConflict
from magflow.models.base import Base
from magflow.models.product import EmagProduct
from magflow.models.sync_log import FINISHED_STATUSES, SYNC_STATUSES, EmagSyncLog
from magflow.models.sync_progress import EmagSyncProgress

__all__ = [
    "FINISHED_STATUSES",
    "SYNC_STATUSES",
    "ApiToken",
    "Base",
    "EmagAccountState",
    "EmagPageRead",
    "EmagProduct",
    "EmagProductChange",
    "EmagProductConflict",
    "EmagSyncLog",
    "EmagSyncProgress",
    "EmagSyncSeen",
    "HealthCheck",
]
