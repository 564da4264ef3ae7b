"""Property-based run against /openapi.json: no 5xx, every response conforms to the schema."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.api.auth import create_token
from magflow.db.engine import session_factory
from magflow.sandbox import SandboxServer

from .conftest import ApiServer, api_settings

MAX_EXAMPLES = 20


@pytest.fixture(scope="module")
def schemathesis_server(database_url: str, sandbox_server: SandboxServer) -> Iterator[ApiServer]:
    server = ApiServer(api_settings(database_url, sandbox_server.base_url))
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="module")
async def admin_token(engine: AsyncEngine) -> AsyncIterator[str]:
    async with session_factory(engine)() as session:
        token = await create_token(session, "schemathesis", "admin")
        await session.commit()
    yield token


@pytest.fixture(scope="module")
def api_schema(schemathesis_server: ApiServer) -> Any:
    return schemathesis.openapi.from_url(f"{schemathesis_server.base_url}/openapi.json")


# schemathesis' pytest plugin (`from_fixture`) does not run under pytest 9 yet, so the operations are driven
# with Hypothesis directly: positive and negative data for each one, every check of `call_and_validate`.
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


def _fuzz(operation: Any, mode: Any, headers: dict[str, str], excluded: list[Any]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    check()


def test_no_server_error_and_schema_conformant(api_schema: Any, admin_token: str) -> None:
    headers = {"Authorization": f"Bearer {admin_token}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12
    no_negative: list[str] = []
    for operation in operations:
        # POST /sync has two rules across fields that JSON Schema cannot say plainly (a selective sync needs
        # a filter; filters need mode selective): it may refuse schema-valid bodies with a 422 naming them.
        excluded = [positive_data_acceptance] if operation.label == "POST /api/v1/emag/products/sync" else []
        for mode in MODES:
            # Negative cases may drop or break the Authorization header, which the token sent here restores;
            # "was invalid input refused" is then undecidable, so negative runs keep the other checks (no 5xx,
            # documented status, schema-conformant body) and the 401s are tested on their own.
            skip = [negative_data_rejection] if mode is schemathesis.GenerationMode.NEGATIVE else []
            try:
                _fuzz(operation, mode, headers, excluded + skip)
            except Unsatisfiable:
                # No input to make invalid (GET /health, GET /statistics): nothing negative to send.
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
                no_negative.append(operation.label)
    assert len(no_negative) <= 3, no_negative
