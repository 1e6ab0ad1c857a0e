"""``POST /v1/cypher``: one read-only Cypher statement, as rows and as a graph (the explorer's Cypher box).

The statement is the caller's own Cypher text by design (the only route where a user string
becomes a statement), so the safety is kgforge's read-only check and limits, not the database's
access mode (ArcadeDB runs writes in a READ session): :mod:`kg_builder.graphdb.readonly` refuses
write and admin clauses, ``CALL { } IN TRANSACTIONS``, procedures off its allow list
(``db.labels``, ``db.relationshipTypes``, ``db.propertyKeys``, ``db.schema.*``) and a second
statement with 422 naming ``query`` and the clause; it runs the statement in a transaction that is
always rolled back, reads at most ``KGFORGE_CYPHER_MAX_ROWS`` rows (``truncated`` says more
existed) and waits at most ``KGFORGE_CYPHER_TIMEOUT_S`` (504 past it). Values go in
``parameters`` (``$name`` in the statement). A statement the database refuses (syntax, unknown
function) is a 422 on ``query`` with the database's message; four statements run at most at once
per API process (503 + ``Retry-After`` beyond). It is a read: it takes the same key as every other
read route (``api/deps.py``).

Example::

    curl -s localhost:8000/v1/cypher -H 'content-type: application/json' \\
      -d '{"query": "MATCH p = (:Entity {id: $id})-[]-() RETURN p LIMIT 10", "parameters": {"id": "umls:virus"}}'
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import ServicesDep
from api.schemas import ErrorPublic
from kg_builder.graphdb.readonly import MAX_QUERY_CHARS, CypherResult, QueryTimeoutError, run_read_only

router = APIRouter(prefix="/v1/cypher", tags=["cypher"])


class CypherCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="One read-only Cypher statement.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Values of the statement's $parameters.")
    limit: int | None = Field(None, ge=1, le=100_000,
                              description="Rows to return; at most (and by default) KGFORGE_CYPHER_MAX_ROWS.")

    @field_validator("parameters")
    @classmethod
    def _bolt_integers(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Bolt integers are 64-bit: a larger one is refused here (422) instead of failing in the driver."""
        def check(item: Any, path: str) -> None:
            if isinstance(item, bool):
                return
            if isinstance(item, int) and not -(2 ** 63) <= item < 2 ** 63:
                raise ValueError(f"{path} is outside the 64-bit integer range Bolt carries")
            if isinstance(item, dict):
                for key, inner in item.items():
                    check(inner, f"{path}.{key}")
            elif isinstance(item, list):
                for i, inner in enumerate(item):
                    check(inner, f"{path}[{i}]")

        check(value, "parameters")
        return value


CypherPublic = CypherResult


@router.post(
    "",
    response_model=CypherPublic,
    responses={
        422: {"model": ErrorPublic, "description": "A write clause, an unknown procedure, more than one "
                                                   "statement, or a statement the database refused."},
        503: {"model": ErrorPublic, "description": "Database unavailable, or too many statements running."},
        504: {"model": ErrorPublic, "description": "The statement ran past KGFORGE_CYPHER_TIMEOUT_S."},
    },
)
def run_cypher(body: CypherCreate, services: ServicesDep) -> CypherPublic | JSONResponse:
    """Run one read-only statement; rows (``columns``, ``rows``) plus every node and relationship met."""
    settings = services.settings
    limit = min(body.limit or settings.cypher_max_rows, settings.cypher_max_rows)
    try:
        return run_read_only(services.graph, body.query, body.parameters, row_limit=limit,
                             timeout_s=settings.cypher_timeout_s)
    except QueryTimeoutError as e:
        return JSONResponse({"detail": str(e)}, status_code=status.HTTP_504_GATEWAY_TIMEOUT)
