from __future__ import annotations

import base64

import httpx
import pytest

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
        response = read(http)
    assert response.status_code == 200
    assert response.json()["isError"] is True
    assert response.json()["messages"] == ["ERROR: Invalid vendor ip [198.51.100.23]"]


def test_unknown_route_is_invalid_url(sandbox: Sandbox) -> None:
    with sandbox.client() as http:
        response = read(http, "product_offer/frobnicate")
    assert (response.status_code, response.json()) == (404, {"message": "Invalid URL"})


def test_control_api_requires_its_token(sandbox: Sandbox) -> None:
    with httpx.Client(base_url=sandbox.control_url) as http:
        assert http.post("/main/mutate", json={"n": 1}).status_code == 401
        assert http.post("/main/mutate", json={"n": 1}, headers={"X-Sandbox-Token": "nope"}).status_code == 401


@pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC", "bAsIc"])
def test_the_basic_scheme_is_accepted_in_any_case(sandbox: Sandbox, scheme: str) -> None:
    token = base64.b64encode(b"sandbox-fbe:sandbox-fbe-pass").decode()
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"{scheme} {token}"}) as http:
        response = read(http, itemsPerPage=1)
    assert response.status_code == 200 and response.json()["results"][0]["id"] == 500_001


@pytest.mark.parametrize("header", ["Bearer abc", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode()])
def test_other_schemes_and_broken_tokens_are_refused(sandbox: Sandbox, header: str) -> None:
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": header}) as http:
        assert read(http).status_code == 403


@pytest.mark.parametrize("status_code", [200, 403])
def test_the_invalid_vendor_ip_answer_and_its_status_are_set_over_http(sandbox: Sandbox, status_code: int) -> None:
    with sandbox.control() as control, sandbox.client() as http:
        answer = control.post(
            "/ip_whitelist", json={"whitelisted": False, "reported_ip": "192.0.2.10", "status_code": status_code}
        ).json()
        refused = read(http, "order/read")
        control.post("/ip_whitelist", json={"whitelisted": True})
        allowed = read(http, "order/read")
    assert answer == {
        "whitelisted": False, "status_code": status_code, "message": "ERROR: Invalid vendor ip [192.0.2.10]"
    }  # fmt: skip
    assert refused.status_code == status_code
    assert refused.json()["isError"] is True
    assert refused.json()["messages"] == ["ERROR: Invalid vendor ip [192.0.2.10]"]
    assert allowed.status_code == 200
