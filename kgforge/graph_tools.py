"""Use the Neo4j tools you already have on kgforge's graph: the ``neo4j`` driver, LangChain's
``langchain-neo4j`` and ``neo4j-graphrag``. Neither library is a kgforge dependency; this module
imports them only inside the functions that need them.

Their own schema readers call APOC's ``apoc.meta.data`` / ``apoc.schema.nodes``, which the embedded
database (ArcadeDB's Bolt plugin) does not have, so kgforge serves the schema itself
(``GET /v1/schema``, computed by ``kg_builder.graphdb.introspect``), in their shape:

    from kgforge import graph_tools
    target = graph_tools.bolt_target()               # uri, (user, password), database from KGFORGE_*
    structured = graph_tools.fetch_structured_schema("http://127.0.0.1:8000", api_key=KEY)  # over HTTP
    # or, with only Bolt: graph_tools.read_structured_schema(driver, target.database)

    from langchain_neo4j import Neo4jGraph
    graph = Neo4jGraph(target.uri, *target.auth, database=target.database, refresh_schema=False)
    graph_tools.apply_schema(graph, structured)      # graph.structured_schema, graph.schema
    graph.query(read_query)                          # any Cypher an analyst types

    from neo4j_graphrag.retrievers import Text2CypherRetriever
    Text2CypherRetriever(driver, llm, neo4j_schema=graph_tools.schema_text(structured),
                         neo4j_database=target.database)

Database names: pass the kgforge database (``KGFORGE_GRAPH_DATABASE``, default ``kgforge``).
ArcadeDB's Bolt plugin maps an empty name, ``neo4j`` and ``system`` to its default database (the
kgforge one when it is the only database), so ``database="neo4j"`` (LangChain's default) reads the
kgforge graph instead of failing; any other unknown name fails with
``Neo.ClientError.Database.DatabaseNotFound``. kgforge cannot refuse those names: clients talk to
the database directly. :func:`check_database` tells which database a name really reaches.

Read-only: the embedded database does not enforce read access mode, and its ``EXPLAIN`` reports every
query as a write; :func:`run_read_only` runs LLM-generated Cypher in a transaction that is always
rolled back and refuses it when it wrote.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from kg_builder.graphdb.introspect import DEFAULT_SAMPLE, read_schema, schema_text, structured_schema
from kg_builder.settings import Settings, get_settings

__all__ = ["BoltTarget", "ReadOnlyViolation", "apply_schema", "bolt_target", "check_database",
           "fetch_structured_schema", "read_structured_schema", "run_read_only", "schema_text"]

# ArcadeDB's Bolt plugin (BoltNetworkExecutor.ensureDatabase) sends these names to its default database.
ALIASED_DATABASE_NAMES = ("", "neo4j", "system")


@dataclass(frozen=True)
class BoltTarget:
    """Where a Neo4j client should connect: ``GraphDatabase.driver(uri, auth=auth)``, ``database=``."""

    uri: str
    auth: tuple[str, str]
    database: str


def bolt_target(settings: Settings | None = None) -> BoltTarget:
    """The Bolt URI, credentials and database name of kgforge's graph (from ``KGFORGE_*``)."""
    settings = settings or get_settings()
    return BoltTarget(settings.bolt_uri, (settings.graph_user, settings.resolved_graph_password()),
                      settings.graph_database)


def read_structured_schema(driver: Any, database: str, *, sample: int = DEFAULT_SAMPLE) -> dict[str, Any]:
    """The structured schema read over Bolt with ``driver`` (a ``neo4j.Driver``): the dict LangChain's
    ``Neo4jGraph.structured_schema`` and neo4j-graphrag's ``get_structured_schema`` return."""
    def query(text: str, **params: Any) -> list[dict[str, Any]]:
        with driver.session(database=database) as session:
            return session.execute_read(lambda tx: [record.data() for record in tx.run(text, **params)])

    return structured_schema(read_schema(query, database=database, sample=sample))


def fetch_structured_schema(api_url: str, *, api_key: str | None = None, sample: int = DEFAULT_SAMPLE,
                            refresh: bool = False, timeout: float = 30.0) -> dict[str, Any]:
    """The structured schema from a running kgforge API (``GET /v1/schema?format=langchain``)."""
    query = urllib.parse.urlencode({"format": "langchain", "sample": sample, "refresh": str(refresh).lower()})
    request = urllib.request.Request(f"{api_url.rstrip('/')}/v1/schema?{query}")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the caller's own API
        return json.loads(response.read())


def apply_schema(graph: Any, structured: dict[str, Any]) -> Any:
    """Give a LangChain ``Neo4jGraph`` (made with ``refresh_schema=False``) kgforge's schema:
    ``graph.structured_schema`` and the prompt text ``graph.schema``. Returns ``graph``."""
    graph.structured_schema = structured
    graph.schema = schema_text(structured)
    return graph


def check_database(driver: Any, name: str) -> str:
    """The database that ``database=name`` really reaches on this server (``SHOW DATABASES``' default
    for the aliased names ``""``, ``neo4j`` and ``system`` on ArcadeDB), or ``name`` itself.

    Raises:
        ValueError: no database of that name (the server's DatabaseNotFound), naming the ones there are.
    """
    import neo4j.exceptions

    import cypher

    try:
        with driver.session(database=name or None) as session:
            rows = session.run(cypher.render("introspect_databases")).data()
    except neo4j.exceptions.ClientError as e:
        if "DatabaseNotFound" not in (e.code or ""):
            raise
        raise ValueError(f"database {name!r} does not exist on this server ({e.message})") from e
    names = [row["name"] for row in rows if row.get("type") != "system"]
    if name in names:
        return name
    defaults = [row["name"] for row in rows if row.get("default")]
    if name in ALIASED_DATABASE_NAMES and defaults:
        return defaults[0]
    return name


class ReadOnlyViolation(RuntimeError):
    """A query meant to read tried to write (it was rolled back)."""


def run_read_only(driver: Any, database: str, query: str, parameters: dict[str, Any] | None = None) -> list[dict]:
    """Run ``query`` (e.g. LLM-generated Cypher) so that it cannot change the graph: in an explicit
    transaction that is rolled back, refusing it when the server reports any update.

    Needed because the embedded database does not enforce read access mode (a ``CREATE`` in
    ``execute_read`` or a ``READ_ACCESS`` session is committed) and answers ``query_type='w'`` to
    every ``EXPLAIN`` (so neo4j-graphrag's Text2CypherRetriever, which checks it, refuses all queries).
    Schema types a refused query would have created may remain (ArcadeDB keeps types created inside
    rolled-back transactions), never nodes, relationships or properties.

    Raises:
        ReadOnlyViolation: the query wrote (created, set, deleted ...); nothing was kept.
    """
    with driver.session(database=database) as session:
        tx = session.begin_transaction()
        try:
            result = tx.run(query, parameters or {})
            rows = [record.data() for record in result]
            summary = result.consume()
        finally:
            tx.rollback()
    if summary.counters.contains_updates or summary.query_type not in ("r", None):
        raise ReadOnlyViolation(f"refused a query that writes (query_type={summary.query_type!r}, "
                                f"{summary.counters}); it was rolled back")
    return rows
