"""The TMF621 conformance run: schemathesis generates requests from the service's own OpenAPI document, valid and
invalid, and every answer must be documented, never a 5xx, and match the schema it claims (status code, content
type, headers, body). The service runs as in production (real HTTP, database and broker); the generated calls go
from a worker thread so the service's event loop keeps answering them."""

from __future__ import annotations

import asyncio
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crm_kit.testing import bearer

EVERY_ROLE = bearer("conformance-0001", roles=("agent", "supervisor", "admin"))
EXAMPLES = 40
"""Generated cases per operation: enough to reach every documented answer of each, within a minute in all."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def conformance_run(document: dict[str, Any], base_url: str) -> list[str]:
    """Each operation of `document` driven with generated cases; the failures found, one line each."""
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base_url, headers=dict(EVERY_ROLE), checks=CHECKS)

        try:
            check()
        except (Exception, BaseExceptionGroup) as failure:
            failures.append(f"{operation.label}: {failure}")
    return failures


async def test_every_operation_conforms_to_its_openapi_document(service):
    document = (await service.http.get("/openapi.json")).json()
    failures = await asyncio.to_thread(conformance_run, document, service.url)
    assert failures == [], "\n\n".join(failures)
