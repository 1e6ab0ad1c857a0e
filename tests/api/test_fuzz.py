"""Property-based run against the OpenAPI schema (schemathesis): no generated request gets a 5xx.

Every operation is exercised with schema-conforming (positive) and schema-violating (negative)
requests, in development mode (no key needed, so requests reach the handlers) and in production
mode with a valid key, against the real graph database holding a tiny graph.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from .conftest import GOOD_KEY, seed_graph

pytestmark = pytest.mark.integration
EXAMPLES = 25


def _fuzz(client, headers=None) -> list[str]:
    # The schema needs a key too outside development (api/routers/docs.py).
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app, **({"headers": headers} if headers else {}))
    failures: list[str] = []
    # /readyz answers 503 by design when a dependency is down (the broker is a stand-in here).
    operations = [
        op for op in (result.ok() for result in schema.get_all_operations()) if op.path != "/readyz"
    ]
    assert len(operations) >= 9
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
            )
            def run(case):
                response = case.call(headers=headers)
                if response.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.formatted_path} {case.query} {case.body!r:.300} -> "
                        f"{response.status_code} {response.text[:300]}"
                    )

            try:
                run()
            except Unsatisfiable:
                # no invalid request exists for an operation without parameters (/healthz)
                assert mode is GenerationMode.NEGATIVE, operation.label
    return failures


def test_no_generated_request_gets_a_server_error(make_client, store):
    seed_graph(store)
    before = store.counts()
    failures = _fuzz(make_client(graph=store))
    assert not failures, "\n".join(failures[:10])
    assert store.counts() == before  # reads never changed the graph, whatever they carried


def test_no_server_error_in_production_mode_either(production, store):
    seed_graph(store)
    failures = _fuzz(production(graph=store), headers={"Authorization": f"Bearer {GOOD_KEY}"})
    assert not failures, "\n".join(failures[:10])
