"""Body styles: a strict server reads one request style and ignores the rest, as a real one would (issue 13)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from magflow.sandbox.wire import parse_php_form
from magflow.testing.sandbox import Sandbox, post

PAGE_TWO = {"currentPage": 2, "itemsPerPage": 10, "status": 1}


def _ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["results"]]


def _expected(sandbox: Sandbox, **filters: Any) -> list[int]:
    matching = [p["id"] for p in sandbox.state.truth("main") if p["status"] == filters.get("status", p["status"])]
    page, per_page = filters.get("currentPage", 1), filters.get("itemsPerPage", 100)
    return matching[(page - 1) * per_page : page * per_page]


# (server style, client style) -> whether the server reads what the client sends.
READS = {
    ("top_level", "json"): True, ("top_level", "json-data"): False, ("top_level", "form"): True,
    ("data", "json"): False, ("data", "json-data"): True, ("data", "form"): True,
    ("lenient", "json"): True, ("lenient", "json-data"): True, ("lenient", "form"): True,
    ("form", "json"): False, ("form", "json-data"): False, ("form", "form"): True,
}  # fmt: skip


@pytest.mark.parametrize(("server", "client"), list(READS))
def test_each_body_style_reads_its_own_style_and_ignores_the_others_as_page_one_of_100(
    sandbox: Sandbox, server: str, client: str
) -> None:
    sandbox.state.set_body_style(server)
    with sandbox.client() as http:
        ids = _ids(post(http, "product_offer/read", PAGE_TWO, client))
        count = post(http, "product_offer/count", {"status": 1, "itemsPerPage": 10}, client).json()["results"]
    if READS[server, client]:
        assert ids == _expected(sandbox, **PAGE_TWO)
        assert count["noOfItems"] == str(len(_expected(sandbox, status=1, itemsPerPage=1000)))
    else:  # an ignored body: no filters, page 1, 100 items — what eMAG does with an unknown key
        assert ids == _expected(sandbox)
        assert count == {"noOfItems": "300", "noOfPages": "3", "itemsPerPage": "100"}


def test_top_level_is_the_default_and_the_wrapper_is_just_an_unknown_key(sandbox: Sandbox) -> None:
    with sandbox.client() as http:
        wrapped = http.post("/product_offer/read", json={"data": {"currentPage": 3}, "itemsPerPage": 5})
        top = http.post("/product_offer/read", json={"currentPage": 3, "itemsPerPage": 5})
    assert sandbox.state.wire.body_style == "top_level"
    assert _ids(wrapped) == _expected(sandbox, itemsPerPage=5), "the top-level key is still read"
    assert _ids(top) == _expected(sandbox, currentPage=3, itemsPerPage=5)


def test_form_bodies_are_read_php_style_with_plain_and_wrapped_keys_and_lists(sandbox: Sandbox) -> None:
    body = "data%5BcurrentPage%5D=2&itemsPerPage=7&data%5Bstatus%5D=1"
    orders = "data[status][]=0&data[status][]=1&data[itemsPerPage]=100"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with sandbox.client() as http:
        for style in ("top_level", "data", "lenient", "form"):
            sandbox.state.set_body_style(style)
            assert _ids(http.post("/product_offer/read", content=body, headers=form)) == _expected(
                sandbox, currentPage=2, itemsPerPage=7, status=1
            ), style
            statuses = {o["status"] for o in http.post("/order/read", content=orders, headers=form).json()["results"]}
            assert statuses == {0, 1}, style


def test_php_form_parsing_gives_strings_lists_and_nesting() -> None:
    parsed = parse_php_form(b"a=1&a=2&data[x][]=3&data[x][]=4&data[y][z]=%C8%98&data[w][0]=5&data[w][1]=6&e=&[]=9")
    assert parsed == {"a": "2", "data": {"x": ["3", "4"], "y": {"z": "Ș"}, "w": ["5", "6"]}, "e": ""}


@pytest.mark.parametrize(
    ("alias", "style"), [("accept-all", "lenient"), ("top-level", "top_level"), ("wrapped", "data"), ("form", "form")]
)
def test_the_issues_spellings_are_aliases(sandbox: Sandbox, alias: str, style: str) -> None:
    with sandbox.control() as control:
        assert control.post("/quirks", json={"body_style": alias}).json()["body_style"] == style
    assert sandbox.state.wire.body_style == style


def test_a_body_that_is_not_json_is_invalid_content_and_a_bad_style_is_refused(sandbox: Sandbox) -> None:
    with sandbox.client() as http, sandbox.control() as control:
        broken = http.post("/product_offer/read", content=b"{not json", headers={"Content-Type": "application/json"})
        assert (broken.status_code, broken.json()) == (400, {"message": "Invalid content"})
        refused = control.post("/quirks", json={"body_style": "xml"})
        assert refused.status_code == 400 and "body_style" in refused.json()["detail"]


def test_the_body_style_is_a_fixture_keyword_and_survives_a_reset(make_sandbox: Any) -> None:
    strict = make_sandbox(products=150, body_style="wrapped")
    strict.state.reset()
    with strict.client() as http:
        assert _ids(post(http, "product_offer/read", {"currentPage": 2}, "json-data"))[0] == 100_101
        assert _ids(post(http, "product_offer/read", {"currentPage": 2}, "json"))[0] == 100_001
