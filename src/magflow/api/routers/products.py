"""The synced products: list and search, one product with its history, local edits, the conflict queue."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from magflow import reports
from magflow.api.deps import Admin, Reader, Session, reject_unknown_query
from magflow.api.errors import ApiError
from magflow.api.routers.sync import PREFIX
from magflow.api.schemas import (
    AUTHENTICATED_ERRORS,
    AccountType,
    ConflictList,
    ConflictResolution,
    ErrorBody,
    ProductDetail,
    ProductList,
    ProductPatch,
)
from magflow.api.schemas import Conflict as ConflictSchema
from magflow.sync.local_edits import LocalEditError, NotFoundError, apply_local_edit, resolve_conflict

router = APIRouter(
    prefix=PREFIX,
    dependencies=[Depends(reject_unknown_query)],
    tags=["products"],
    responses=AUTHENTICATED_ERRORS,
)
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No such product or conflict"}}
ConflictId = Annotated[int, Path(ge=1, le=2**53)]


def _product_not_found(product_id: uuid.UUID) -> ApiError:
    return ApiError(404, "product_not_found", f"Product {product_id} does not exist; list products with /products.")


@router.get("/products", response_model=ProductList, summary="Get synchronized products")
async def list_products(
    principal: Reader,
    session: Session,
    skip: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    account_type: AccountType | None = None,
    search: Annotated[
        str | None, Query(max_length=200, description="In SKU or name; ignores case and diacritics")
    ] = None,
    sync_status: Annotated[
        str | None,
        Query(
            pattern="^(synced|conflict|missing|failed)$",
            description="failed: quarantined products (sync_issue says why)",
        ),
    ] = None,
) -> Any:
    term = search.replace("\x00", "") if search is not None else None
    items, total = await reports.list_products(session, skip, limit, account_type, term, sync_status)
    return {"items": items, "total": total, "skip": skip, "limit": limit}


@router.get(
    "/products/{product_id}",
    response_model=ProductDetail,
    summary="One product: every stored field, its change history and open conflicts",
    responses=NOT_FOUND,
)
async def get_product(product_id: uuid.UUID, principal: Reader, session: Session) -> Any:
    detail = await reports.product_detail(session, product_id)
    if detail is None:
        raise _product_not_found(product_id)
    return detail


@router.patch(
    "/products/{product_id}",
    response_model=ProductDetail,
    summary="Edit fields locally and set custom_fields (the conflict strategy decides what a sync does next)",
    responses=NOT_FOUND,
)
async def patch_product(product_id: uuid.UUID, body: ProductPatch, principal: Admin, session: Session) -> Any:
    changes = body.changes()  # an empty body is a no-op that answers the product, as PATCH allows
    try:
        await apply_local_edit(session, product_id, changes, body.custom_fields, actor=principal.name)
    except NotFoundError:
        raise _product_not_found(product_id) from None
    except LocalEditError as exc:
        raise ApiError(422, "invalid_request", f"{str(exc).rstrip('.')}; fix it and retry.") from None
    await session.commit()
    return await reports.product_detail(session, product_id)


@router.get("/conflicts", response_model=ConflictList, summary="The manual strategy's conflict queue")
async def list_conflicts(
    principal: Reader,
    session: Session,
    status: Annotated[str, Query(pattern="^(open|resolved|superseded|all)$")] = "open",
    account_type: AccountType | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Any:
    items = await reports.list_conflicts(session, None if status == "all" else status, limit, account_type)
    return {"items": items, "count": len(items)}


@router.post(
    "/conflicts/{conflict_id}/resolve",
    response_model=ConflictSchema,
    summary="Settle a conflict: keep eMAG's value, the local one, or set another",
    responses={**NOT_FOUND, 409: {"model": ErrorBody, "description": "The conflict is already resolved"}},
)
async def resolve(conflict_id: ConflictId, body: ConflictResolution, principal: Admin, session: Session) -> Any:
    try:
        conflict = await resolve_conflict(session, conflict_id, body.resolution, body.value, actor=principal.name)
    except NotFoundError:
        raise ApiError(
            404, "conflict_not_found", f"Conflict {conflict_id} does not exist; list them with /conflicts."
        ) from None
    except LocalEditError as exc:
        message = str(exc).rstrip(".")
        if "already" in message:
            raise ApiError(409, "conflict_resolved", f"{message}; nothing left to do.") from None
        raise ApiError(422, "invalid_request", f"value: {message}; fix it and retry.") from None
    await session.commit()
    return reports.conflict_row(conflict)
