"""The peer: dlt's REST API source loading both sandbox accounts into PostgreSQL with merge on (account, id).

Run by bench/peer_dlt.py in its own process; prints one JSON line (wall time, rows loaded).
eMAG pages through `currentPage` in the POST body: dlt's page-number paginator with `page_body_path`.
Nested lists stay JSON columns (max_table_nesting=0), the closest shape to magflow's one row per offer.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import dlt
from dlt.sources.rest_api import rest_api_source

ACCOUNTS = {"main": ("sandbox-main", "sandbox-main-pass"), "fbe": ("sandbox-fbe", "sandbox-fbe-pass")}


def resource(account: str) -> dict[str, Any]:
    user, password = ACCOUNTS[account]
    return {
        "name": f"products_{account}",
        "table_name": "emag_products",
        "primary_key": ["account", "id"],
        "write_disposition": "merge",
        "max_table_nesting": 0,
        "parallelized": True,  # both accounts are read at once, as magflow does
        "endpoint": {
            "path": "product_offer/read",
            "method": "POST",
            "auth": {"type": "http_basic", "username": user, "password": password},
            "json": {"currentPage": 1, "itemsPerPage": 100},
            "data_selector": "results",
            "paginator": {
                "type": "page_number",
                "base_page": 1,
                "page_body_path": "currentPage",
                "total_path": None,
                "stop_after_empty_page": True,
            },
        },
    }


def tag(account: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A one-argument map: dlt passes a second argument (meta) to maps that accept one."""
    return lambda offer: {**offer, "account": account}


def with_password(url: str) -> str:
    """dlt insists on a password even where PostgreSQL trusts local connections; trust ignores it."""
    scheme, rest = url.split("://", 1)
    userinfo, host = rest.split("@", 1)
    return f"{scheme}://{userinfo if ':' in userinfo else userinfo + ':trust'}@{host}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--pipelines-dir", required=True)
    args = parser.parse_args()
    source = rest_api_source(
        {"client": {"base_url": args.base_url + "/"}, "resources": [resource(a) for a in ACCOUNTS]},
        name="emag",
    )
    source.max_table_nesting = 0
    for account in ACCOUNTS:
        source.resources[f"products_{account}"].add_map(tag(account))
    pipeline = dlt.pipeline(
        pipeline_name="bench_emag",
        pipelines_dir=args.pipelines_dir,
        destination=dlt.destinations.postgres(with_password(args.db_url)),
        dataset_name="dlt_emag",
    )
    started = time.perf_counter()
    pipeline.run(source)
    wall = time.perf_counter() - started
    print(json.dumps({"wall_s": wall}))


if __name__ == "__main__":
    main()
