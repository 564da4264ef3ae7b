"""Issue 19, item 18: security headers on every answer, no version for anonymous callers, docs served from
magflow's own files, the scope of each route in the OpenAPI document, a venv without setuptools' known CVEs."""

from __future__ import annotations

import re
from importlib import metadata

import httpx

from .conftest import PREFIX, Api

SCOPES = {
    ("post", "/sync"): "sync",
    ("post", "/sync/{sync_id}/cancel"): "sync",
    ("get", "/sync/{sync_id}"): "read",
    ("get", "/status"): "read",
    ("get", "/statistics"): "read",
    ("get", "/history"): "read",
    ("get", "/products"): "read",
    ("get", "/products/{product_id}"): "read",
    ("patch", "/products/{product_id}"): "admin",
    ("get", "/conflicts"): "read",
    ("post", "/conflicts/{conflict_id}/resolve"): "admin",
}


async def test_every_answer_says_no_sniffing_and_no_caching(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
        admin = {"Authorization": f"Bearer {api.tokens['admin']}"}
        answers = [
            await http.get("/health"),
            await http.get(f"{PREFIX}/status", headers=admin),
            await http.get(f"{PREFIX}/status"),
            await http.get(f"{PREFIX}/history?limit=0", headers=admin),
            await http.get("/nothing-here"),
            await http.patch(f"{PREFIX}/products/00000000-0000-0000-0000-000000000000", headers=admin, json={}),
            await http.get("/openapi.json"),
            await http.get("/docs"),
        ]
    assert [a.status_code for a in answers] == [200, 200, 401, 422, 404, 404, 200, 200]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff", answer.url
        assert answer.headers["cache-control"] == "no-store", answer.url
        assert answer.headers["x-frame-options"] == "DENY", answer.url


async def test_health_shows_the_version_only_to_a_token(api: Api) -> None:
    from magflow import __version__

    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
        assert (await http.get("/health")).json() == {"status": "ok"}
        read = {"Authorization": f"Bearer {api.tokens['read']}"}
        assert (await http.get("/health", headers=read)).json() == {"status": "ok", "version": __version__}


async def test_the_docs_load_nothing_from_outside_this_server(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
        for page in ("/docs", "/redoc"):
            html = (await http.get(page)).text
            referenced = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
            referenced += re.findall(r"""\b(?:url|openapi_url|spec-url)\s*[:=]\s*['"]([^'"]+)['"]""", html)
            assert referenced, html
            assert not re.search(r"https?://|//cdn|googleapis", html), html
            for url in referenced:
                asset = await http.get(url)
                assert asset.status_code == 200, url
                assert len(asset.content) > 100, url
        assert (await http.get("/docs/assets/..%2F..%2Fpyproject.toml")).status_code == 404
        assert (await http.get("/docs/assets/core.py")).status_code == 404


async def test_the_openapi_document_names_the_scope_of_each_call(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
        schema = (await http.get("/openapi.json")).json()
    found = {}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path.startswith(PREFIX):
                found[(method, path.removeprefix(PREFIX))] = operation.get("x-magflow-scope")
                assert operation["security"] == [{"HTTPBearer": [operation["x-magflow-scope"]]}]
                assert f"scope `{operation['x-magflow-scope']}`" in operation["description"]
    assert {k: v for k, v in found.items() if k != ("post", "/test-connection")} == SCOPES
    assert found[("post", "/test-connection")] in ("read", "sync")
    assert schema["paths"]["/metrics"]["get"]["x-magflow-scope"] == "read"
    assert "x-magflow-scope" not in schema["paths"]["/health"]["get"]


def test_the_venv_has_no_setuptools_with_known_cves() -> None:
    # scripts/_venv.sh upgrades it: Python 3.11's venv comes with setuptools 65.5.0 (CVE-2024-6345,
    # CVE-2025-47273). A venv without setuptools (Python 3.12+) has nothing to fix.
    try:
        version = metadata.version("setuptools")
    except metadata.PackageNotFoundError:
        return
    assert tuple(int(p) for p in version.split(".")[:3]) >= (78, 1, 1), version
