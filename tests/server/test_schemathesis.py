"""schemathesis against the live server's /openapi.json with an admin token: no server error
and every response as the schema documents it (body, status code, content type)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server.conftest import Site

#: examples per operation: about 30 operation strategies x 15 keeps the whole run under a minute
EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


def _operation(result: Ok[Any] | Err[Any]) -> Any:
    """The operation, or a failure naming why the schema could not describe it."""
    assert not isinstance(result, Err), f"invalid operation in the schema: {result.err()}"
    return result.ok()


def test_every_operation_conforms_to_the_schema(site: Site, tmp_path: Path) -> None:
    schema = schemathesis.openapi.from_url(f"{site.server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {site.tokens['admin']}"}
    operations = [_operation(result) for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures: list[str] = []
    statuses: list[int] = []
    # each operation fuzzed, and those on a workflow once more on a registered one, so that
    # submissions and reads do real work rather than answer 404
    runs = [(op, op.as_strategy()) for op in operations]
    runs += [
        (op, op.as_strategy(path_parameters={"name": "slow"}))
        for op in operations
        if "{name}" in op.path
    ]
    for operation, strategy in runs:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def check(case: Any) -> None:
            response = case.call_and_validate(
                base_url=site.server.url, headers=headers, checks=CHECKS, timeout=30
            )
            statuses.append(response.status_code)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, not just the first
            failures.append(f"{operation.label}: {exc}")
    if failures:
        pytest.fail("\n\n".join(failures))
    assert len(statuses) >= 5 * len(operations)
    assert {200, 202, 404, 422} <= set(statuses)  # it reached real work, not only errors
