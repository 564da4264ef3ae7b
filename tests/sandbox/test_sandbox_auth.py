from __future__ import annotations

import httpx

from magflow.testing.sandbox import Sandbox, read


def test_wrong_credentials_are_refused_like_emag(sandbox: Sandbox) -> None:
    for auth in [("sandbox-main", "wrong"), ("sandbox-fbe", "sandbox-main-pass"), None]:
        with httpx.Client(base_url=sandbox.base_url, auth=auth) as http:
            response = read(http)
        assert response.status_code == 403
        assert response.json() == {
            "isError": True,
            "messages": ["You are not allowed to use this API."],
            "results": [],
        }


def test_each_login_sees_its_own_catalogue(sandbox: Sandbox) -> None:
    with sandbox.client("main") as main, sandbox.client("fbe") as fbe:
        main_ids = {p["id"] for p in read(main).json()["results"]}
        fbe_ids = {p["id"] for p in read(fbe).json()["results"]}
    assert main_ids and fbe_ids and not main_ids & fbe_ids


def test_ip_not_whitelisted_answers_invalid_vendor_ip(sandbox: Sandbox) -> None:
    sandbox.state.set_ip_whitelisted(False, reported_ip="198.51.100.23")
    with sandbox.client() as http:
        body = read(http).json()
    assert body["isError"] is True
    assert body["messages"] == ["Invalid vendor ip [198.51.100.23]"]


def test_unknown_route_is_invalid_url(sandbox: Sandbox) -> None:
    with sandbox.client() as http:
        response = read(http, "product_offer/frobnicate")
    assert (response.status_code, response.json()) == (404, {"message": "Invalid URL"})


def test_control_api_requires_its_token(sandbox: Sandbox) -> None:
    with httpx.Client(base_url=sandbox.control_url) as http:
        assert http.post("/main/mutate", json={"n": 1}).status_code == 401
        assert http.post("/main/mutate", json={"n": 1}, headers={"X-Sandbox-Token": "nope"}).status_code == 401
