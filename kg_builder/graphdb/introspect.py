"""The graph's schema, read with bounded queries: what ``GET /v1/schema`` serves and
``kgforge.graph_tools`` hands to LangChain and neo4j-graphrag.

Why: LangChain's ``Neo4jGraph()`` and neo4j-graphrag's ``get_schema`` / ``get_structured_schema``
call ``apoc.meta.data`` and ``apoc.schema.nodes``, which the embedded database (ArcadeDB's Bolt
plugin) does not have, and its ``db.schema.visualization()`` answers one row per type instead of
Neo4j's ``nodes`` / ``relationships`` pair. This module computes the same information itself.

How (every query is bounded; see ``cypher/introspect.cypher``):

* labels from ``db.labels()`` and types from ``db.relationshipTypes()`` (at most ``max_types`` of
  each; the rest are reported in ``truncated``). Names that are not plain identifiers (letters,
  digits, ``_``, starting with a letter: e.g. neo4j-graphrag's ``__Entity__`` / ``__KGBuilder__``)
  never reach Cypher text; they are listed in ``skipped``;
* exact counts per label and per type (one ``count`` query each: cheap on ArcadeDB, whose types
  keep their counts, and on Neo4j, whose count store answers them);
* property keys and their types are **sampled**: the first ``sample`` nodes of each label and the
  first ``sample`` relationships of each type (default 100, like apoc.meta.data's sampling). A key
  that appears only on rarer nodes is missed; raise ``sample`` (the API's ``?sample=``, at most
  10,000) to see more. Types are the apoc.meta.data names (``STRING``, ``INTEGER``, ``FLOAT``,
  ``BOOLEAN``, ``LIST``, ``MAP``, ``DATE``, ``DATE_TIME``, ...); a key seen with several types
  gets the most frequent one;
* relationship patterns ``(start label)-[type]->(end label)`` are those of the sampled
  relationships (every label of each endpoint), so a pattern used only by rarer edges is missed too;
* metadata: the constraints and indexes (``SHOW CONSTRAINTS`` / ``SHOW INDEXES``).

Labels and types without any node or edge (ArcadeDB keeps a type once created, even by a rolled
back transaction) are listed with count 0 and left out of the LangChain shape, as apoc.meta.data
would leave them out.

Shapes: :class:`GraphSchema` (``GET /v1/schema``); :func:`structured_schema` gives the dict that
LangChain's ``Neo4jGraph.structured_schema`` and neo4j-graphrag's ``get_structured_schema`` return
(``node_props``, ``rel_props``, ``relationships``, ``metadata``); :func:`schema_text` gives the text
of their ``format_schema(structured, is_enhanced=False)`` (``Neo4jGraph.schema``, the
``neo4j_schema`` of a ``Text2CypherRetriever``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, Field

import cypher

DEFAULT_SAMPLE = 100
MAX_SAMPLE = 10_000
DEFAULT_MAX_TYPES = 1000

# (query text, parameters) -> rows as dicts
QueryFn = Callable[..., list[dict[str, Any]]]


class PropertyInfo(BaseModel):
    property: str
    type: str


class LabelInfo(BaseModel):
    label: str
    count: int
    properties: list[PropertyInfo] = Field(default_factory=list)


class Pattern(BaseModel):
    start: str
    type: str
    end: str


class RelTypeInfo(BaseModel):
    type: str
    count: int
    patterns: list[Pattern] = Field(default_factory=list)
    properties: list[PropertyInfo] = Field(default_factory=list)


class GraphSchema(BaseModel):
    """The graph's schema as ``GET /v1/schema`` serves it (``format=kgforge``)."""

    database: str
    computed_at: str
    sample: int = Field(description="nodes per label and relationships per type read for keys and patterns")
    labels: list[LabelInfo]
    relationship_types: list[RelTypeInfo]
    relationships: list[Pattern] = Field(description="every (start, type, end) pattern seen, all types")
    constraints: list[dict[str, Any]] = Field(default_factory=list)
    indexes: list[dict[str, Any]] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list,
                               description="labels/types left out: not plain identifiers (never put into Cypher)")
    truncated: bool = Field(False, description="more than max_types labels or types: the rest are left out")


def value_type(value: Any) -> str:
    """The apoc.meta.data type name of a property value read over Bolt."""
    import neo4j.time

    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "INTEGER"
    if isinstance(value, float):
        return "FLOAT"
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, (list, tuple)):
        return "LIST"
    if isinstance(value, dict):
        return "MAP"
    if isinstance(value, (neo4j.time.DateTime, dt.datetime)):
        return "DATE_TIME" if getattr(value, "tzinfo", None) is not None else "LOCAL_DATE_TIME"
    if isinstance(value, (neo4j.time.Date, dt.date)):
        return "DATE"
    if isinstance(value, (neo4j.time.Time, dt.time)):
        return "TIME" if getattr(value, "tzinfo", None) is not None else "LOCAL_TIME"
    if isinstance(value, (neo4j.time.Duration, dt.timedelta)):
        return "DURATION"
    if isinstance(value, (bytes, bytearray)):
        return "BYTE_ARRAY"
    return type(value).__name__.upper()


def _properties(samples: Iterable[dict[str, Any]]) -> list[PropertyInfo]:
    seen: dict[str, Counter] = defaultdict(Counter)
    for props in samples:
        for key, value in (props or {}).items():
            if value is not None:
                seen[key][value_type(value)] += 1
    return [PropertyInfo(property=key, type=types.most_common(1)[0][0]) for key, types in sorted(seen.items())]


def _safe(names: Iterable[str], placeholder: str, skipped: list[str]) -> list[str]:
    kept = []
    for name in names:
        try:
            kept.append(cypher.check_identifier(name, placeholder))
        except cypher.InvalidIdentifierError:
            skipped.append(f"{placeholder} {name!r}")
    return kept


def read_schema(query: QueryFn, *, database: str, sample: int = DEFAULT_SAMPLE,
                max_types: int = DEFAULT_MAX_TYPES) -> GraphSchema:
    """Read the schema through ``query(text, **params) -> rows`` (a read transaction).

    Costs ``2 + 2 * (labels + types) + 2`` bounded queries.
    """
    if not 1 <= sample <= MAX_SAMPLE:
        raise ValueError(f"sample must be between 1 and {MAX_SAMPLE}, got {sample}")
    skipped: list[str] = []
    all_labels = sorted({row["label"] for row in query(cypher.render("introspect_labels"))})
    all_types = sorted({row["type"] for row in query(cypher.render("introspect_relationship_types"))})
    truncated = len(all_labels) > max_types or len(all_types) > max_types
    labels = _safe(all_labels[:max_types], "label", skipped)
    types = _safe(all_types[:max_types], "relationship type", skipped)

    label_infos = []
    for label in labels:
        count = query(cypher.render("introspect_count_label", label=label))[0]["count"]
        rows = query(cypher.render("introspect_sample_nodes", label=label), sample=sample) if count else []
        label_infos.append(LabelInfo(label=label, count=count, properties=_properties(r["props"] for r in rows)))

    known = set(labels)
    rel_infos = []
    for rel_type in types:
        count = query(cypher.render("introspect_count_type", rel_type=rel_type))[0]["count"]
        rows = query(cypher.render("introspect_sample_edges", rel_type=rel_type), sample=sample) if count else []
        patterns = sorted({(s, e) for r in rows for s in r["start"] for e in r["end"] if s in known and e in known})
        rel_infos.append(RelTypeInfo(type=rel_type, count=count,
                                     patterns=[Pattern(start=s, type=rel_type, end=e) for s, e in patterns],
                                     properties=_properties(r["props"] for r in rows)))

    constraints = query(cypher.render("show_constraints"))
    indexes = query(cypher.render("introspect_indexes"))
    return GraphSchema(
        database=database, computed_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        sample=sample, labels=label_infos, relationship_types=rel_infos,
        relationships=[p for info in rel_infos for p in info.patterns],
        constraints=constraints, indexes=indexes, skipped=skipped, truncated=truncated,
    )


def structured_schema(schema: GraphSchema) -> dict[str, Any]:
    """LangChain's ``Neo4jGraph.structured_schema`` / neo4j-graphrag's ``get_structured_schema`` dict.

    ``metadata.index`` rows carry ``label``, ``properties``, ``type`` (what apoc.schema.nodes gives
    LangChain, less the selectivity statistics ArcadeDB does not expose).
    """
    def props(infos: list[PropertyInfo]) -> list[dict[str, str]]:
        return [{"property": p.property, "type": p.type} for p in infos]

    return {
        "node_props": {info.label: props(info.properties) for info in schema.labels if info.count},
        "rel_props": {info.type: props(info.properties) for info in schema.relationship_types
                      if info.count and info.properties},
        "relationships": [p.model_dump() for p in schema.relationships],
        "metadata": {
            "constraint": schema.constraints,
            "index": [{"label": (row.get("labelsOrTypes") or [None])[0], "properties": row.get("properties") or [],
                       "type": row.get("type"), "name": row.get("name")}
                      for row in schema.indexes if row.get("entityType") in (None, "NODE")],
        },
    }


def schema_text(structured: dict[str, Any]) -> str:
    """The schema text LangChain and neo4j-graphrag put in prompts (their ``format_schema`` with
    ``is_enhanced=False``, reproduced so that kgforge does not depend on them)."""
    def props(mapping: dict[str, list[dict[str, str]]]) -> str:
        lines = []
        for name, items in mapping.items():
            joined = ", ".join(f"{p['property']}: {p['type']}" for p in items)
            lines.append(f"{name} {{{joined}}}")
        return "\n".join(lines)

    rels = "\n".join(f"(:{r['start']})-[:{r['type']}]->(:{r['end']})" for r in structured["relationships"])
    return "\n".join(["Node properties:", props(structured["node_props"]), "Relationship properties:",
                      props(structured["rel_props"]), "The relationships:", rels])
