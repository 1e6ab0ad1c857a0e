"""neo4j-graphrag on the embedded database: its schema helpers replaced by kgforge's, its writer, its
retrievers. The LLM is the OpenAI-compatible TEST DOUBLE (tests/support/openai_double.py).

What works: ``Neo4jWriter`` (it uses ``SET n:$(labels)`` and ``apoc.merge.relationship``, both there);
``Text2CypherRetriever`` can be built with kgforge's schema text but refuses every generated query,
because the embedded database answers ``query_type='w'`` to each ``EXPLAIN`` its safety check runs;
the vector/fulltext retrievers need indexes that cannot be created over Bolt. The working text-to-
Cypher recipe is the library's LLM and prompt with kgforge's schema, run by
``kgforge.graph_tools.run_read_only``.

Skipped unless neo4j-graphrag is importable: ``benchmarks/graphtools_env.sh test``.
"""

from __future__ import annotations

import asyncio

import pytest
from neo4j.exceptions import DatabaseError

from kgforge.graph_tools import read_structured_schema, run_read_only, schema_text

graphrag = pytest.importorskip(
    "neo4j_graphrag", reason="neo4j-graphrag is not a kgforge dependency: run `benchmarks/graphtools_env.sh test`")

from neo4j_graphrag import schema as graphrag_schema  # noqa: E402
from neo4j_graphrag.components.kg_writer import Neo4jWriter  # noqa: E402
from neo4j_graphrag.components.types import Neo4jGraph, Neo4jNode, Neo4jRelationship  # noqa: E402
from neo4j_graphrag.exceptions import (  # noqa: E402
    Neo4jIndexError,
    SchemaFetchError,
    Text2CypherRetrievalError,
)
from neo4j_graphrag.generation.prompts import Text2CypherTemplate  # noqa: E402
from neo4j_graphrag.indexes import create_vector_index  # noqa: E402
from neo4j_graphrag.llm import OpenAILLM  # noqa: E402
from neo4j_graphrag.retrievers import Text2CypherRetriever  # noqa: E402
from neo4j_graphrag.retrievers.text2cypher import extract_cypher  # noqa: E402

pytestmark = pytest.mark.integration

CAT_FOOD = "```cypher\nMATCH (a:Entity {name: 'cat'})-[:EATS]->(f:Entity) RETURN f.name AS food\n```"


def _llm(double) -> OpenAILLM:
    return OpenAILLM(model_name=double.model, base_url=double.base_url, api_key="test-double", max_retries=0)


def test_schema_helpers_fail_and_kgforge_gives_the_same_shape(seeded, driver, target):
    with pytest.raises(DatabaseError, match="apoc.meta.data"):
        graphrag_schema.get_structured_schema(driver, database=target.database)
    with pytest.raises(DatabaseError, match="apoc.meta.data"):
        graphrag_schema.get_schema(driver, database=target.database)
    structured = read_structured_schema(driver, target.database)
    assert set(structured) == {"node_props", "rel_props", "relationships", "metadata"}
    assert schema_text(structured) == graphrag_schema.format_schema(structured, is_enhanced=False)


def test_neo4j_writer_writes_and_kgforge_schema_sees_it(store, driver, target):
    writer = Neo4jWriter(driver, neo4j_database=target.database)
    graph = Neo4jGraph(
        nodes=[Neo4jNode(id=f"p{i}", label="Person", properties={"name": f"person {i}"}) for i in range(4)],
        relationships=[Neo4jRelationship(start_node_id=f"p{i}", end_node_id=f"p{i + 1}", type="KNOWS",
                                         properties={"since": 2020 + i}) for i in range(3)])
    result = asyncio.run(writer.run(graph))
    assert result.status == "SUCCESS", result.metadata
    rows = driver.execute_query("MATCH (a:Person)-[r:KNOWS]->(b:Person) RETURN a.name AS a, r.since AS s, "
                                "labels(a) AS labels ORDER BY s", database_=target.database)[0]
    assert [(r["a"], r["s"]) for r in rows] == [("person 0", 2020), ("person 1", 2021), ("person 2", 2022)]
    assert set(rows[0]["labels"]) == {"Person", "__Entity__", "__KGBuilder__"}
    structured = read_structured_schema(driver, target.database)
    assert {"start": "Person", "type": "KNOWS", "end": "Person"} in structured["relationships"]
    assert {"property": "since", "type": "INTEGER"} in structured["rel_props"]["KNOWS"]
    assert "__Entity__" not in structured["node_props"]  # not plain identifiers: skipped, never in Cypher
    # the writer creates nodes (entity resolution is a later step): a replay duplicates them
    asyncio.run(writer.run(graph))
    assert driver.execute_query("MATCH (n:Person) RETURN count(n) AS c", database_=target.database)[0][0]["c"] == 8


def test_text2cypher_retriever_refuses_every_query_here(seeded, driver, target, double):
    with pytest.raises(SchemaFetchError, match="apoc.meta.data"):
        Text2CypherRetriever(driver, _llm(double), neo4j_database=target.database)  # reads the schema itself
    text = schema_text(read_structured_schema(driver, target.database))
    retriever = Text2CypherRetriever(driver, _llm(double), neo4j_schema=text, neo4j_database=target.database)
    double.reply(CAT_FOOD)
    with pytest.raises(Text2CypherRetrievalError, match="query_type='w'"):
        retriever.search(query_text="What does the cat eat?")
    assert text in double.requests[0].messages[-1]["content"]  # kgforge's schema was in the prompt


def test_text_to_cypher_recipe_with_kgforge_schema(seeded, driver, target, double):
    structured = read_structured_schema(driver, target.database)
    prompt = Text2CypherTemplate().format(schema=schema_text(structured), examples="",
                                          query_text="What does the cat eat?")
    double.reply(CAT_FOOD)
    cypher_text = extract_cypher(_llm(double).invoke(prompt).content)
    assert run_read_only(driver, target.database, cypher_text) == [{"food": "fish"}]


def test_vector_index_cannot_be_created(driver, target):
    with pytest.raises(Neo4jIndexError, match="Only standard, RANGE and TEXT index types"):
        create_vector_index(driver, "chunk_vectors", label="Chunk", embedding_property="embedding",
                            dimensions=8, similarity_fn="cosine", neo4j_database=target.database)
