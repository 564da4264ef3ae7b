"""Request and response bodies, as the user's guide shows them (responses may carry a few more fields)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema, model_validator

from magflow.sync.plan import MAX_FILTER_SETS, too_many_named

AccountType = Literal["main", "fbe"]
AccountOrBoth = Literal["main", "fbe", "both"]
Mode = Literal["incremental", "full", "selective"]
Strategy = Literal["emag_priority", "local_priority", "newest_wins", "manual"]
RunStatus = Literal["queued", "running", "completed", "partial", "failed", "interrupted", "cancelled"]
RequestFormat = Literal["json", "json-data", "form"]

OfferId = Annotated[int, Field(ge=1, le=2**53)]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MONEY_MAX = 999_999_999_999
# A number or a decimal string (what pydantic accepts), spelt out so the OpenAPI schema matches the validation.
Money = Annotated[
    Decimal,
    Field(ge=0, le=MONEY_MAX, allow_inf_nan=False),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": MONEY_MAX},
                {"type": "string", "pattern": r"^[0-9]{1,12}(\.[0-9]{1,12})?$"},
            ],
            "examples": [199.99, "199.99"],
        }
    ),
]
Whole = Annotated[int, Field(ge=0, le=2_000_000_000)]
SELECTIVE_FILTERS = (
    "ids",
    "skus",
    "part_number_keys",
    "status",
    "validation_status",
    "offer_validation_status",
    "general_stock",
)


def strip_nul(value: Any) -> Any:
    """PostgreSQL text and JSONB cannot hold U+0000; it never means anything in a product, so it is dropped."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {strip_nul(k): strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_nul(v) for v in value]
    return value


class StrippedInput(BaseModel):
    @model_validator(mode="before")
    @classmethod
    def _strip_nul(cls, data: Any) -> Any:
        return strip_nul(data)


class ErrorField(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: a short code and one sentence saying what to do."""

    error: str = Field(examples=["invalid_request"])
    detail: str = Field(examples=["items_per_page: Input should be less than or equal to 100; fix it and retry."])
    fields: list[ErrorField] | None = Field(default=None, description="422 only: every invalid field")
    running_sync_id: str | None = Field(default=None, description="409 only: the sync that is running")


# The errors every authenticated endpoint can answer, documented once for the OpenAPI schema.
AUTHENTICATED_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing, unknown or revoked token"},
    403: {"model": ErrorBody, "description": "The token's scope does not allow this call"},
    422: {"model": ErrorBody, "description": "An invalid field (named in detail and fields)"},
    503: {"model": ErrorBody, "description": "The database is unreachable"},
}


LIMIT_NOTE = f"ids, skus and part_number_keys together: at most {MAX_FILTER_SETS}"


class SyncRequest(StrippedInput):
    """POST /sync. Every field is optional; the selective filters apply to mode `selective` only."""

    model_config = ConfigDict(extra="forbid")

    account_type: AccountOrBoth = "both"
    mode: Mode = "incremental"
    max_pages: int | None = Field(default=None, ge=1, le=100_000, description="null: every page")
    items_per_page: int = Field(
        default=100,
        ge=1,
        le=100,
        description="honoured by a selective sync of ids, skus or part_number_keys only; every other sync reads "
        "100 per page (another value is ignored, with a note in data.notes)",
    )
    include_inactive: bool = False
    conflict_strategy: Strategy = Field(
        default="emag_priority", description="emag_priority with a sync token; any other strategy needs admin"
    )
    run_async: bool = False
    ids: list[OfferId] = Field(
        default_factory=list, max_length=MAX_FILTER_SETS, description=f"selective: offer ids ({LIMIT_NOTE})"
    )
    skus: list[Sku] = Field(
        default_factory=list, max_length=MAX_FILTER_SETS, description=f"selective: SKUs, part_number ({LIMIT_NOTE})"
    )
    part_number_keys: list[Sku] = Field(
        default_factory=list, max_length=MAX_FILTER_SETS, description=f"selective ({LIMIT_NOTE})"
    )
    status: Literal[0, 1, 2] | None = Field(default=None, description="selective: offer status")
    validation_status: int | None = Field(default=None, ge=0, le=100, description="selective")
    offer_validation_status: int | None = Field(default=None, ge=0, le=100, description="selective")
    general_stock: int | None = Field(default=None, ge=0, le=2_000_000_000, description="selective")

    @model_validator(mode="after")
    def _filters_match_mode(self) -> SyncRequest:
        given = [name for name in SELECTIVE_FILTERS if getattr(self, name) not in (None, [])]
        if self.mode == "selective" and not given:
            raise ValueError("mode selective needs at least one filter: " + ", ".join(SELECTIVE_FILTERS))
        if self.mode != "selective" and given:
            raise ValueError(f"{given[0]} is a selective filter; send it with mode selective")
        refused = too_many_named(len(self.ids) + len(self.skus) + len(self.part_number_keys))
        if refused is not None:
            raise ValueError(refused)
        return self


class SyncData(BaseModel):
    sync_id: str
    total_processed: int
    created: int
    updated: int
    unchanged: int
    failed: int
    missing: int = 0
    conflicts: int = 0
    errors: list[dict[str, Any]]
    error_message: str | None = None
    duration_seconds: float | None = None
    accounts: dict[str, dict[str, Any]] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list, description="what of the request was not done as asked, and why")


class SyncResponse(BaseModel):
    status: Literal["completed", "partial", "failed", "cancelled", "interrupted"]
    message: str
    data: SyncData


class SyncAcceptedData(BaseModel):
    sync_id: str
    status_url: str
    sync_url: str
    dispatched_to: Literal["celery", "server"]
    notes: list[str] = Field(default_factory=list, description="what of the request was not done as asked, and why")


class SyncAccepted(BaseModel):
    status: Literal["accepted"]
    message: str
    data: SyncAcceptedData


class CancelResponse(BaseModel):
    status: Literal["cancelling", "cancelled"]
    message: str
    data: dict[str, str]


class SyncRun(BaseModel):
    id: uuid.UUID
    sync_type: str
    account_type: str
    operation: str
    mode: str
    status: str
    started_at: datetime
    completed_at: datetime | None
    duration_seconds: float | None
    total_items: int
    processed_items: int
    created_items: int
    updated_items: int
    unchanged_items: int
    failed_items: int
    missing_items: int
    conflicts: int
    pages_processed: int
    api_requests: int
    rate_limit_hits: int
    error_message: str | None
    errors: list[Any]
    triggered_by: str
    parameters: dict[str, Any]
    resumed_from: uuid.UUID | None
    cancel_requested: bool


class AccountProgress(BaseModel):
    account_type: str
    status: str
    current_page: int
    total_pages: int
    processed_items: int
    total_items: int
    percentage: float
    items_per_second: float
    estimated_completion_at: datetime | None
    last_error: str | None
    updated_at: datetime


class SyncRunDetail(SyncRun):
    accounts: list[AccountProgress]


class CurrentSync(BaseModel):
    id: uuid.UUID
    account_type: str
    operation: str
    mode: str
    status: str
    started_at: datetime
    total_items: int
    processed_items: int
    percentage: float
    estimated_completion_at: datetime | None
    triggered_by: str
    cancel_requested: bool
    accounts: list[AccountProgress]


class RequestFormatInfo(BaseModel):
    """How an account's requests are written, and what `magflow test-connection --detect` recorded."""

    request_format: RequestFormat = Field(description="the body style syncs of this account use")
    source: Literal["account_setting", "recorded", "setting", "default"] = Field(
        description="account_setting: EMAG_<ACCOUNT>_REQUEST_FORMAT; recorded: found by `magflow test-connection "
        "--detect`; setting: EMAG_REQUEST_FORMAT; default: json"
    )
    detected_format: RequestFormat | None = None
    detected_at: datetime | None = None
    detected_by: str | None = None
    detection: dict[str, Any] | None = Field(default=None, description="each style tried and what it showed")


class StatusResponse(BaseModel):
    is_running: bool
    current_sync: CurrentSync | None
    active_syncs: list[CurrentSync]
    recent_syncs: list[SyncRun]
    checked_at: datetime
    request_formats: dict[str, RequestFormatInfo] = Field(
        default_factory=dict, description="per configured account: the request format (body style) and its origin"
    )


class AccountCounts(BaseModel):
    total: int
    active: int
    synced: int
    missing: int
    conflict: int


class StatisticsResponse(BaseModel):
    products_by_account: dict[str, int]
    total_products: int
    by_account: dict[str, AccountCounts]
    open_conflicts: int
    last_completed_sync_at: dict[str, datetime | None]
    recent_syncs: list[SyncRun]


class HistoryResponse(BaseModel):
    items: list[SyncRun]
    count: int


class ProductSummary(BaseModel):
    id: uuid.UUID
    account_type: str
    emag_id: int
    sku: str | None
    part_number_key: str | None
    name: str | None
    brand: str | None
    sale_price: Decimal | None
    currency: str | None
    general_stock: int | None
    status: int | None
    is_active: bool
    validation_status: int | None
    offer_validation_status: int | None
    sync_status: str = Field(
        description="synced, conflict, missing, or failed: the latest eMAG payload was quarantined"
    )
    sync_issue: str | None = Field(
        default=None, description="why the latest payload was quarantined, or what was cleaned from it"
    )
    is_missing: bool
    last_synced_at: datetime = Field(description="when a sync last read this product from eMAG, changed or not")
    updated_at: datetime


class ProductList(BaseModel):
    items: list[ProductSummary]
    total: int
    skip: int
    limit: int


class ProductChange(BaseModel):
    id: int
    change_type: str
    field: str | None
    old_value: Any
    new_value: Any
    source: str
    sync_id: uuid.UUID | None
    actor: str | None
    changed_at: datetime


class Conflict(BaseModel):
    id: int
    product_id: uuid.UUID
    account_type: str
    emag_id: int
    field: str
    base_value: Any
    local_value: Any
    emag_value: Any
    status: str
    resolution: str | None
    resolved_value: Any
    sync_id: uuid.UUID | None
    detected_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None


class ProductDetail(ProductSummary):
    """Every stored field of the product (the eMAG payload in `raw_emag_data`), its history and conflicts."""

    model_config = ConfigDict(extra="allow")

    raw_emag_data: dict[str, Any]
    custom_fields: dict[str, Any]
    local_edits: dict[str, Any]
    changes: list[ProductChange]
    open_conflicts: list[Conflict]


class ConflictList(BaseModel):
    items: list[Conflict]
    count: int


class ProductPatch(StrippedInput):
    """Local edits (the conflict rules protect them from the next sync) and `custom_fields` (merged; a null
    value removes a key; never touched by a sync)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(max_length=1000)] | None = None
    brand: Annotated[str, StringConstraints(max_length=255)] | None = None
    description: Annotated[str, StringConstraints(max_length=100_000)] | None = None
    sale_price: Money | None = None
    recommended_price: Money | None = None
    min_sale_price: Money | None = None
    max_sale_price: Money | None = None
    vat_id: Whole | None = None
    warranty: Whole | None = None
    status: Literal[0, 1, 2] | None = None
    general_stock: Whole | None = None
    category_id: Whole | None = None
    stock: list[dict[str, Any]] | None = None
    handling_time: list[dict[str, Any]] | None = None
    images: list[dict[str, Any]] | None = None
    characteristics: list[dict[str, Any]] | None = None
    ean: list[Annotated[str, StringConstraints(min_length=1, max_length=32)]] | None = None
    custom_fields: dict[str, Any] | None = None

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set if name != "custom_fields"}


class ConflictResolution(StrippedInput):
    """`emag` takes eMAG's value, `local` keeps the local one, `value` sets `value`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"resolution": {"const": "value"}}, "required": ["resolution"]},
            "then": {"required": ["value"]},
        },
    )

    resolution: Literal["emag", "local", "value"]
    value: Any = None

    @model_validator(mode="after")
    def _value_with_value(self) -> ConflictResolution:
        if self.resolution == "value" and "value" not in self.model_fields_set:
            raise ValueError("resolution value needs the value to set in 'value'")
        return self


class DeepCheckLine(BaseModel):
    name: str = Field(description="credentials, IP whitelist, request format, count vs listing, platform, ...")
    state: Literal["ok", "warn", "fail", "info"]
    result: str
    advice: str | None = Field(default=None, description="what to do, when there is something to do")


class DeepCheck(BaseModel):
    """`?deep=true`: everything a first connection to a real account should establish (about 6 requests)."""

    ok: bool = Field(description="no check failed")
    host: str
    platform: Literal["RO", "BG", "HU", "FD-RO", "FD-BG"] | None = Field(description="from the base URL's host")
    expected_currency: str | None
    currencies_seen: list[str] = Field(description="the currency of the offers read")
    request_format: RequestFormat
    request_format_origin: str = Field(description="the setting (or detection) the body style comes from")
    paging: Literal["honoured", "ignored", "unproven"] | None
    filters: Literal["honoured", "ignored", "unproven"] | None
    product_count: int | None
    listing_agrees: bool | None = Field(description="the listing ends where product_offer/count says")
    clock_offset_seconds: float | None = Field(description="eMAG's Date header minus this machine's clock")
    rate_limit_headers: dict[str, str] = Field(description="the X-RateLimit-* headers eMAG sent")
    full_sync_requests: int | None
    requests_per_second: float | None = Field(description="the configured budget (EMAG_RATE_LIMIT_PER_*)")
    predicted_full_sync_seconds: float | None
    requests_used: int = Field(description="requests this check sent")
    checks: list[DeepCheckLine]


class ConnectionResult(BaseModel):
    account_type: AccountType
    status: Literal[
        "ok", "auth_failed", "ip_not_whitelisted", "unreachable", "rate_limited", "error", "paging_ignored",
        "count_mismatch",
    ]  # fmt: skip
    connected: bool
    message: str
    product_count: int | None = None
    latency_ms: float | None = None
    deep: DeepCheck | None = Field(default=None, description="only with ?deep=true")
