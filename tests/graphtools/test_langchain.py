"""LangChain's ``langchain-neo4j`` on the embedded database, with kgforge's schema.

Recipe: ``Neo4jGraph(url, username, password, database=..., refresh_schema=False)``, then
``kgforge.graph_tools.apply_schema(graph, structured)`` with the schema from ``GET /v1/schema?format=
langchain`` (or ``read_structured_schema`` over Bolt), then ``graph.query(...)`` and the chains.
The LLM here is the OpenAI-compatible TEST DOUBLE (tests/support/openai_double.py), not a model.

Skipped unless langchain-neo4j is importable: ``benchmarks/graphtools_env.sh test``.
"""

from __future__ import annotations

import pytest
from neo4j.exceptions import DatabaseError

from kgforge.graph_tools import apply_schema, read_structured_schema, schema_text

langchain_neo4j = pytest.importorskip(
    "langchain_neo4j", reason="langchain-neo4j is not a kgforge dependency: run `benchmarks/graphtools_env.sh test`")
graphrag_schema = pytest.importorskip(
    "neo4j_graphrag.schema", reason="neo4j-graphrag is not a kgforge dependency: run `benchmarks/graphtools_env.sh test`")

pytestmark = pytest.mark.integration


def _graph(target, **options):
    return langchain_neo4j.Neo4jGraph(url=target.uri, username=target.auth[0], password=target.auth[1],
                                      database=target.database, **options)


def test_default_constructor_fails_on_missing_apoc(target):
    with pytest.raises(DatabaseError, match="apoc.meta.data"):
        _graph(target)  # refresh_schema=True reads apoc.meta.data


def test_kgforge_schema_then_queries(seeded, driver, target):
    graph = _graph(target, refresh_schema=False)
    try:
        structured = read_structured_schema(driver, target.database)
        apply_schema(graph, structured)
        assert graph.get_structured_schema["relationships"] == [
            {"start": "Entity", "type": "EATS", "end": "Entity"}, {"start": "Entity", "type": "LIVES_IN", "end": "Entity"}]
        assert "(:Entity)-[:EATS]->(:Entity)" in graph.get_schema
        rows = graph.query("MATCH (a:Entity)-[:LIVES_IN]->(h:Entity {name: $home}) RETURN a.name AS animal "
                           "ORDER BY animal", params={"home": "house"})
        assert rows == [{"animal": "cat"}, {"animal": "dog"}]
    finally:
        graph.close()


def test_kgforge_text_is_format_schema(seeded, driver, target):
    structured = read_structured_schema(driver, target.database)
    assert schema_text(structured) == graphrag_schema.format_schema(structured, is_enhanced=False)


def test_default_database_name_reads_the_kgforge_graph(seeded, target):
    graph = langchain_neo4j.Neo4jGraph(url=target.uri, username=target.auth[0], password=target.auth[1],
                                       refresh_schema=False)  # database defaults to "neo4j"
    try:
        assert graph.query("MATCH (n:Entity) RETURN count(n) AS c") == [{"c": 8}]
    finally:
        graph.close()


def test_graph_cypher_qa_chain_with_kgforge_schema(seeded, driver, target, double):
    from langchain_openai import ChatOpenAI

    graph = apply_schema(_graph(target, refresh_schema=False), read_structured_schema(driver, target.database))
    llm = ChatOpenAI(base_url=double.base_url, api_key="test-double", model=double.model, max_retries=0)
    double.reply("```cypher\nMATCH (a:Entity {name: 'cat'})-[:EATS]->(f:Entity) RETURN f.name AS food\n```")
    double.reply("The cat eats fish.")
    try:
        chain = langchain_neo4j.GraphCypherQAChain.from_llm(llm, graph=graph, allow_dangerous_requests=True,
                                                            return_intermediate_steps=True, validate_cypher=True)
        out = chain.invoke({"query": "What does the cat eat?"})
    finally:
        graph.close()
    assert out["result"] == "The cat eats fish."
    assert out["intermediate_steps"][1]["context"] == [{"food": "fish"}]
    prompt = double.requests[0].messages[-1]["content"]
    assert "(:Entity)-[:EATS]->(:Entity)" in prompt and "Entity {" in prompt  # kgforge's schema reached the LLM


def test_add_graph_documents_writes_through_apoc_merge(store, target):
    from langchain_core.documents import Document
    from langchain_neo4j.graphs.graph_document import GraphDocument, Node, Relationship

    alice, bob = Node(id="alice", type="Person"), Node(id="bob", type="Person")
    doc = GraphDocument(nodes=[alice, bob], relationships=[Relationship(source=alice, target=bob, type="KNOWS")],
                        source=Document(page_content="Alice knows Bob."))
    graph = _graph(target, refresh_schema=False)
    try:
        graph.add_graph_documents([doc])
        graph.add_graph_documents([doc])  # MERGE: a replay adds nothing
        assert graph.query("MATCH (a:Person)-[r:KNOWS]->(b:Person) RETURN a.id AS a, b.id AS b, count(r) AS n") == [
            {"a": "alice", "b": "bob", "n": 1}]
    finally:
        graph.close()
