"""POST /sync, cancelling, GET /status, /statistics, /history, /sync/{id} and POST /test-connection."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from magflow import reports
from magflow.accounts import AccountNotConfiguredError, account_config, configured_accounts
from magflow.api.access import client_address, shown
from magflow.api.auth import Principal
from magflow.api.background import SyncNotQueuedError, execute_queued_sync, fail_queued
from magflow.api.deps import AppState, Reader, Session, State, Syncer, reject_unknown_query
from magflow.api.errors import ApiError
from magflow.api.schemas import (
    AUTHENTICATED_ERRORS,
    AccountOrBoth,
    AccountType,
    CancelResponse,
    ConnectionResult,
    DeepCheck,
    DeepCheckLine,
    ErrorBody,
    HistoryResponse,
    RunStatus,
    StatisticsResponse,
    StatusResponse,
    SyncAccepted,
    SyncRequest,
    SyncResponse,
    SyncRunDetail,
)
from magflow.emag import DeepReport
from magflow.models import EmagSyncLog
from magflow.sync import SyncAlreadyRunningError, SyncRequestError
from magflow.sync.connection_checks import VERDICT_TTL_SECONDS, CheckAnswer, ConnectionChecks, SyncRunningError
from magflow.sync.enums import ConflictResolutionStrategy, SyncMode
from magflow.sync.locks import account_is_locked
from magflow.sync.plan import scan_page_size
from magflow.sync.runs import reap_dead_runs, running_sync_for

log = logging.getLogger("magflow.api.access")

PREFIX = "/api/v1/emag/products"
DEFAULT_STRATEGY = ConflictResolutionStrategy.EMAG_PRIORITY.value
OPERATIONS = {"full": "full_sync", "incremental": "incremental_sync", "selective": "selective_sync"}
MESSAGES = {
    "completed": "Product synchronization completed successfully",
    "partial": "Product synchronization finished with errors; see data.errors, then run it again to retry",
    "failed": "Product synchronization failed; see data.error_message",
    "cancelled": "Product synchronization was cancelled; the same sync run again resumes from its checkpoint",
    "interrupted": "Product synchronization was interrupted (see data.error_message); the same sync run again "
    "resumes from its checkpoint",
}

router = APIRouter(
    prefix=PREFIX,
    dependencies=[Depends(reject_unknown_query)],
    tags=["sync"],
    responses=AUTHENTICATED_ERRORS,
)

_SYNC_BODY = {
    "required": False,
    "content": {"application/json": {"schema": SyncRequest.model_json_schema()}},
}


def _sync_id_not_found(sync_id: uuid.UUID) -> ApiError:
    return ApiError(404, "sync_not_found", f"Sync {sync_id} does not exist; see /history for the known syncs.")


async def _parse_sync_request(request: Request) -> SyncRequest:
    """The guide's curl calls send JSON with or without `Content-Type: application/json`: always read JSON."""
    raw = await request.body()
    payload: Any = {}
    if raw.strip():
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise RequestValidationError(
                [{"loc": ("body",), "msg": 'The body must be a JSON object such as {"mode": "full"}'}]
            ) from None
    if not isinstance(payload, dict):
        raise RequestValidationError([{"loc": ("body",), "msg": "The body must be a JSON object"}])
    try:
        return SyncRequest.model_validate(payload)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_context=False)]
        ) from None


async def _busy(state: AppState, session: AsyncSession, accounts: list[str]) -> None:
    """409 when one of the accounts has a live sync (queued, or running in a process holding its lock)."""
    for account in accounts:
        running = await running_sync_for(session, account)
        if running is None:
            continue
        if running.status == "queued" or await account_is_locked(state.engine, account):
            raise _already_running(SyncAlreadyRunningError(account, running))


def _already_running(exc: SyncAlreadyRunningError) -> ApiError:
    running = str(exc.running_sync_id) if exc.running_sync_id else None
    return ApiError(409, "sync_already_running", str(exc), extra={"running_sync_id": running})


def _check_strategy(request: Request, principal: Principal, strategy: str) -> None:
    """The default strategy is what every scheduled sync runs; choosing how conflicts with local (admin) edits
    are settled otherwise is an admin's decision."""
    if strategy == DEFAULT_STRATEGY or principal.allows("admin"):
        return
    log.warning(
        "api auth refused status=403 reason=insufficient_scope token=%s scope=%s conflict_strategy=%s client=%s "
        "method=POST path=%s",
        principal.name,
        principal.scope,
        strategy,
        client_address(request),
        shown(request.url.path),
    )
    raise ApiError(
        403,
        "insufficient_scope",
        f"conflict_strategy {strategy} needs an admin token (token {principal.name!r} has scope "
        f"{principal.scope!r}); leave it out to sync with {DEFAULT_STRATEGY}, or use a token created with "
        "--scope admin.",
    )


def _not_configured(exc: AccountNotConfiguredError) -> ApiError:
    return ApiError(409, "account_not_configured", f"{str(exc).rstrip('.')}, then restart `magflow serve`.")


@router.post(
    "/sync",
    response_model=SyncResponse,
    summary="Trigger product synchronization",
    openapi_extra={"requestBody": _SYNC_BODY},
    responses={
        202: {"model": SyncAccepted, "description": "run_async: queued; poll /status or /sync/{sync_id}"},
        409: {"model": ErrorBody, "description": "A sync of this account is running, or it has no credentials"},
    },
)
async def trigger_sync(request: Request, principal: Syncer, state: State, session: Session) -> Any:
    body = await _parse_sync_request(request)
    _check_strategy(request, principal, body.conflict_strategy)
    names_offers = bool(body.ids or body.skus or body.part_number_keys)
    items_per_page, note = scan_page_size(SyncMode(body.mode), body.items_per_page, names_offers)
    notes = [note] if note else []
    wanted = ["main", "fbe"] if body.account_type == "both" else [body.account_type]
    configured = [a for a in wanted if a in configured_accounts(state.settings)]
    if not configured:
        try:
            account_config(state.settings, wanted[0])  # type: ignore[arg-type]
        except AccountNotConfiguredError as exc:
            raise _not_configured(exc) from None
    await _busy(state, session, configured)

    # triggered_by is also the actor of every audit row the sync writes (emag_product_changes.actor).
    params = {
        **body.model_dump(mode="json"),
        "items_per_page": items_per_page,
        "triggered_by": f"api:{principal.name}"[:64],
    }
    run = EmagSyncLog(
        id=uuid.uuid4(),
        account_type=body.account_type if len(configured) == len(wanted) else configured[0],
        operation=OPERATIONS[body.mode],
        mode=body.mode,
        parameters={k: v for k, v in params.items() if k != "triggered_by"},
        status="queued",
        triggered_by=params["triggered_by"],
    )
    session.add(run)
    await session.commit()

    if body.run_async:
        target = await state.dispatcher.dispatch(run.id, params)
        return JSONResponse(
            SyncAccepted.model_validate(
                {
                    "status": "accepted",
                    "message": f"Product synchronization {run.id} started in the background; "
                    f"follow it at {PREFIX}/status",
                    "data": {
                        "sync_id": str(run.id),
                        "status_url": f"{PREFIX}/status",
                        "sync_url": f"{PREFIX}/sync/{run.id}",
                        "dispatched_to": target,
                        "notes": notes,
                    },
                }
            ).model_dump(mode="json"),
            status_code=202,
        )

    try:
        result = await execute_queued_sync(state.engine, state.settings, run.id, params)
    except SyncAlreadyRunningError as exc:
        raise _already_running(exc) from None
    except SyncNotQueuedError as exc:
        raise ApiError(409, "sync_cancelled", f"{exc}; it was cancelled before it started.") from None
    except SyncRequestError as exc:
        await fail_queued(state.engine, run.id, str(exc))
        raise ApiError(422, "invalid_request", f"{str(exc).rstrip('.')}; fix it and retry.") from None
    except AccountNotConfiguredError as exc:
        await fail_queued(state.engine, run.id, str(exc))
        raise _not_configured(exc) from None
    status = result["status"]
    data = {**result, "notes": notes}
    return SyncResponse.model_validate({"status": status, "message": MESSAGES[status], "data": data})


@router.get(
    "/sync/{sync_id}",
    response_model=SyncRunDetail,
    summary="One sync with its per-account progress",
    responses={404: {"model": ErrorBody, "description": "No such sync"}},
)
async def get_sync(sync_id: uuid.UUID, principal: Reader, state: State, session: Session) -> Any:
    await _settle_dead_runs(state, session)
    row = await reports.sync_run(session, sync_id)
    if row is None:
        raise _sync_id_not_found(sync_id)
    return row


@router.post(
    "/sync/{sync_id}/cancel",
    response_model=CancelResponse,
    status_code=202,
    summary="Cancel a running sync: it stops at the next page boundary, checkpointed, status cancelled",
    responses={
        404: {"model": ErrorBody, "description": "No such sync"},
        409: {"model": ErrorBody, "description": "The sync already finished"},
    },
)
async def cancel_sync(sync_id: uuid.UUID, principal: Syncer, session: Session) -> Any:
    run = await session.get(EmagSyncLog, sync_id, with_for_update=True)
    if run is None:
        raise _sync_id_not_found(sync_id)
    if run.status not in ("queued", "running"):
        raise ApiError(409, "sync_finished", f"Sync {sync_id} already finished ({run.status}); nothing to cancel.")
    run.cancel_requested = True
    if run.status == "queued":
        # Nobody runs it yet: settle it now; a worker that picks it up later sees it is no longer queued.
        run.status = "cancelled"
        run.completed_at = datetime.now(UTC)
        run.error_message = f"cancelled by {principal.name} before it started"
        await session.commit()
        return {
            "status": "cancelled",
            "message": f"Sync {sync_id} was cancelled before it started",
            "data": {"sync_id": str(sync_id)},
        }
    await session.commit()
    return {
        "status": "cancelling",
        "message": f"Sync {sync_id} stops at its next page boundary; check {PREFIX}/sync/{sync_id}",
        "data": {"sync_id": str(sync_id)},
    }


@router.get("/status", response_model=StatusResponse, summary="Get current synchronization status")
async def get_status(principal: Reader, state: State, session: Session) -> Any:
    await _settle_dead_runs(state, session)
    return await reports.sync_status(session, state.settings)


async def _settle_dead_runs(state: AppState, session: AsyncSession) -> None:
    """Before any read of runs: a run whose process died, or lost its account lock, is interrupted at once (its
    lock is gone, no heartbeat timeout to wait for), and a queued run nobody started for long is failed."""
    stale = timedelta(seconds=state.settings.magflow_stale_run_seconds)
    if await reap_dead_runs(state.engine, session, stale):
        await session.commit()


@router.get("/statistics", response_model=StatisticsResponse, summary="Get synchronization statistics")
async def get_statistics(principal: Reader, state: State, session: Session) -> Any:
    await _settle_dead_runs(state, session)
    return await reports.statistics(session)


@router.get("/history", response_model=HistoryResponse, summary="Get synchronization history")
async def get_history(
    principal: Reader,
    state: State,
    session: Session,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    account_type: AccountOrBoth | None = None,
    status: RunStatus | None = None,
) -> Any:
    await _settle_dead_runs(state, session)
    items = await reports.history(session, limit, account_type, status)
    return {"items": items, "count": len(items)}


@router.post(
    "/test-connection",
    response_model=ConnectionResult,
    summary="Test connection to eMAG API (the verdict says what to fix; never a secret)",
    description="Reads the count and two one-offer pages, so a body style eMAG does not honour shows as "
    "`paging_ignored`. With `deep=true` the answer adds `deep`: credentials, IP whitelist, request format, count "
    "vs listing, platform and currency, clock offset, rate-limit headers, catalogue size and the predicted time "
    "of a full sync (about 6 requests).\n\nChecks spend the account's rate budget, so an account is checked at "
    f"most once every {VERDICT_TTL_SECONDS:g} s: a later call answers the same verdict (its message says how old, "
    "and so does the `Age` header), callers arriving during a check share it, and while a sync of the account runs "
    "its progress answers instead (a deep check then is 409 `sync_running`).",
    responses={
        409: {
            "model": ErrorBody,
            "description": "The account has no credentials, or a sync of it runs and cannot answer yet",
        }
    },
)
async def test_connection(
    principal: Syncer,
    state: State,
    account_type: Annotated[AccountType, Query()] = "main",
    deep: Annotated[bool, Query(description="run the deep check (see the description)")] = False,
) -> Any:
    try:
        config = account_config(state.settings, account_type)
    except AccountNotConfiguredError as exc:
        raise _not_configured(exc) from None
    checks = _connection_checks(state)
    try:
        answer = await checks.answer(account_type, deep)
    except SyncRunningError as exc:
        raise ApiError(409, "sync_running", str(exc), extra={"running_sync_id": str(exc.sync_id)}) from None
    except AccountNotConfiguredError as exc:
        raise _not_configured(exc) from None
    secrets = [s for s in (config.password, state.settings.password(account_type).get_secret_value()) if s]
    now = datetime.now(UTC)
    verdict = answer.verdict
    result = ConnectionResult(
        account_type=account_type,
        status=verdict.status,
        connected=verdict.ok,
        message=_hide(verdict.message, secrets) + answer.note(now, checks.ttl),
        product_count=verdict.product_count,
        latency_ms=verdict.latency_ms,
        deep=_deep(answer.report, secrets) if answer.report is not None else None,
    )
    # Without deep=true the guide's answer is unchanged: no `deep` key at all.
    return JSONResponse(
        result.model_dump(mode="json", exclude=None if deep else {"deep"}), headers=_age_header(answer, now)
    )


def _connection_checks(state: AppState) -> ConnectionChecks:
    checks = state.extras.get("connection_checks")
    if not isinstance(checks, ConnectionChecks):
        checks = state.extras["connection_checks"] = ConnectionChecks(state.engine, state.settings)
    return checks


def _age_header(answer: CheckAnswer, now: datetime) -> dict[str, str]:
    """HTTP's own way to say an answer was not made for this request, and how old it is (RFC 9111 5.1)."""
    return {} if answer.source == "check" else {"Age": str(answer.age_seconds(now))}


def _hide(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _deep(report: DeepReport, secrets: list[str]) -> DeepCheck:
    fields = {name: getattr(report, name) for name in DeepCheck.model_fields if name not in ("ok", "checks")}
    checks = [
        DeepCheckLine(
            name=line.name,
            state=line.state,
            result=_hide(line.result, secrets),
            advice=_hide(line.advice, secrets) if line.advice else None,
        )
        for line in report.checks
    ]
    return DeepCheck(ok=report.ok, checks=checks, **fields)
