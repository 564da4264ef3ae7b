"""The listing order of one account's offers (the `product_sort` and `insert_at` quirks, see quirks.py).

The listing is a plain list of offer ids in the order product_offer/read pages them; these functions keep it in
that order as offers are edited, added and the sort changes.
"""

from __future__ import annotations

import bisect
import random

from magflow.sandbox.quirks import Quirks


def arrange(ids: list[int], quirks: Quirks) -> None:
    """After the sort changed: the id sorts re-sort; the modified sorts keep the order the listing has."""
    if quirks.product_sort == "id_asc":
        ids.sort()
    elif quirks.product_sort == "id_desc":
        ids.sort(reverse=True)


def edited(ids: list[int], product_id: int, quirks: Quirks) -> None:
    """An offer changed: the modified sorts move it (to the end, or to the front)."""
    if quirks.product_sort == "modified_asc":
        ids.remove(product_id)
        ids.append(product_id)
    elif quirks.product_sort == "modified_desc":
        ids.remove(product_id)
        ids.insert(0, product_id)


def inserted(ids: list[int], new_ids: list[int], quirks: Quirks, rng: random.Random) -> None:
    """New offers enter the listing: where an edited offer goes in the modified sorts, else where insert_at says."""
    where = {"modified_asc": "end", "modified_desc": "front"}.get(quirks.product_sort, quirks.insert_at)
    if where == "end":
        ids.extend(new_ids)
    elif where == "front":
        ids[0:0] = new_ids
    else:
        for product_id in new_ids:
            ids.insert(rng.randrange(len(ids) + 1), product_id)


def find(ids: list[int], product_id: int) -> list[int]:
    """[product_id] if it is listed, else []; by bisection when the listing is ascending there."""
    at = bisect.bisect_left(ids, product_id)
    if (at < len(ids) and ids[at] == product_id) or product_id in ids:
        return [product_id]
    return []
