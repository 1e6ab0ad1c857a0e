"""``GET /v1/schema``: the graph's node labels, relationship types, patterns and property keys,
for the Neo4j tools users already have (their own schema readers need APOC, which the embedded
database lacks; see ``kg_builder/graphdb/introspect.py`` for how it is computed and sampled).

``?format=``:

* ``kgforge`` (default): :class:`kg_builder.graphdb.introspect.GraphSchema`: labels with node counts
  and sampled property keys/types, relationship types with counts, ``(start, type, end)`` patterns
  and property keys/types, constraints, indexes, and what was skipped or truncated;
* ``langchain``: the ``structured_schema`` dict of LangChain's ``Neo4jGraph`` and neo4j-graphrag's
  ``get_structured_schema`` (``node_props``, ``rel_props``, ``relationships``, ``metadata``);
* ``text``: ``text/plain``, their ``format_schema`` text (``Neo4jGraph.schema``, a
  ``Text2CypherRetriever``'s ``neo4j_schema``).

``?sample=`` (1..10000, default 100) is the number of nodes per label and relationships per type
read for property keys and patterns. Answers are cached per sample size for
:data:`CACHE_SECONDS` (a schema changes when jobs add relation types, not per request);
``?refresh=true`` recomputes. ``kgforge.graph_tools`` wraps all of this for clients.
"""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from api.deps import ServicesDep
from kg_builder.graphdb.introspect import (
    DEFAULT_SAMPLE,
    MAX_SAMPLE,
    GraphSchema,
    read_schema,
    schema_text,
    structured_schema,
)

CACHE_SECONDS = 30.0

router = APIRouter(prefix="/v1/schema", tags=["schema"])


class SchemaCache:
    """Schemas by sample size, each kept for ``ttl`` seconds; one computation at a time."""

    def __init__(self, ttl: float = CACHE_SECONDS):
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[float, GraphSchema]] = {}

    def get(self, sample: int, compute, *, refresh: bool = False) -> GraphSchema:
        with self._lock:  # a burst of requests computes once, the others wait for it
            entry = self._entries.get(sample)
            if entry is not None and not refresh and time.monotonic() - entry[0] < self.ttl:
                return entry[1]
            schema = compute()
            self._entries[sample] = (time.monotonic(), schema)
            return schema


def _cache(request: Request) -> SchemaCache:
    state = request.app.state
    if getattr(state, "schema_cache", None) is None:
        state.schema_cache = SchemaCache()
    return state.schema_cache


@router.get(
    "",
    response_model=None,
    responses={200: {"description": "The schema (JSON for kgforge/langchain, text/plain for text)",
                     "content": {"application/json": {"schema": GraphSchema.model_json_schema()},
                                 "text/plain": {}}}},
)
def get_schema(
    request: Request,
    services: ServicesDep,
    format: Annotated[Literal["kgforge", "langchain", "text"], Query(
        description="kgforge (default), langchain (structured_schema dict) or text (format_schema text)")] = "kgforge",
    sample: Annotated[int, Query(ge=1, le=MAX_SAMPLE, description="nodes per label / edges per type sampled")]
    = DEFAULT_SAMPLE,
    refresh: Annotated[bool, Query(description="recompute instead of answering from the cache")] = False,
) -> Any:
    """The graph's schema (labels, relationship types and patterns, property keys), cached briefly."""
    store = services.graph
    schema = _cache(request).get(
        sample, lambda: read_schema(store._query, database=store.database, sample=sample), refresh=refresh)
    if format == "kgforge":
        return schema
    structured = structured_schema(schema)
    if format == "langchain":
        return structured
    return PlainTextResponse(schema_text(structured))
