"""Which rows are the same product across MAIN and FBE: offer ids differ, eMAG's product key does not."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class CrossAccountMatch:
    key: str
    matched_on: str
    main_product_id: uuid.UUID
    main_emag_id: int
    fbe_product_id: uuid.UUID
    fbe_emag_id: int


async def cross_account_matches(
    session: AsyncSession, *, sku: str | None = None, limit: int = 1000
) -> list[CrossAccountMatch]:
    """Pairs of MAIN and FBE rows holding the same product: same part_number_key (eMAG's product id) when
    both have one, else the same SKU (part_number)."""
    result = await session.execute(
        text(
            """
            SELECT COALESCE(m.part_number_key, m.sku) AS key,
                   CASE WHEN m.part_number_key IS NOT NULL AND m.part_number_key = f.part_number_key
                        THEN 'part_number_key' ELSE 'sku' END AS matched_on,
                   m.id, m.emag_id, f.id, f.emag_id
            FROM emag_products_v2 m
            JOIN emag_products_v2 f
              ON f.account_type = 'fbe'
             AND ((m.part_number_key IS NOT NULL AND f.part_number_key = m.part_number_key)
                  OR ((m.part_number_key IS NULL OR f.part_number_key IS NULL) AND f.sku = m.sku))
            WHERE m.account_type = 'main' AND NOT m.is_missing AND NOT f.is_missing
              AND (CAST(:sku AS text) IS NULL OR m.sku = :sku OR f.sku = :sku)
            ORDER BY key
            LIMIT :limit
            """
        ),
        {"sku": sku, "limit": limit},
    )
    return [CrossAccountMatch(r[0], r[1], r[2], r[3], r[4], r[5]) for r in result.all()]
