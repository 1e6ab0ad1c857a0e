"""The read-only Cypher box: the checker (kg_builder/graphdb/readonly.py) on its own, and
``POST /v1/cypher`` against the real embedded graph database."""

from __future__ import annotations

import pytest

from kg_builder.graphdb import readonly
from kg_builder.graphdb.readonly import ReadOnlyViolation, check_read_only, tokenize

from .conftest import seed_graph

# --- the checker ----------------------------------------------------------------------------------
REFUSED = [
    ("CREATE (n:Entity {id: 'x'})", "CREATE"),
    ("create (n)", "CREATE"),
    ("MATCH (n) SET n.name = 'x'", "SET"),
    ("match (n) set n += {a: 1}", "SET"),
    ("MERGE (n:Entity {id: 'x'}) RETURN n", "MERGE"),
    ("MATCH (n) DELETE n", "DELETE"),
    ("MATCH (n) DETACH DELETE n", "DETACH"),
    ("match (n)\n  detach\n  delete n", "DETACH"),
    ("MATCH (n) REMOVE n.name", "REMOVE"),
    ("MATCH (n) REMOVE n:Entity", "REMOVE"),
    ("MATCH (n) FOREACH (x IN [1] | SET n.a = x)", "FOREACH"),
    ("LOAD CSV FROM 'file:///etc/passwd' AS line RETURN line", "LOAD CSV"),
    ("load csv with headers from 'http://x' as r return r", "LOAD CSV"),
    ("MATCH (n) CALL { WITH n RETURN n.id AS i } IN TRANSACTIONS RETURN i", "CALL { } IN TRANSACTIONS"),
    ("CALL apoc.create.node(['X'], {})", "CALL apoc.create.node"),
    ("CALL dbms.security.createUser('a', 'b', false)", "CALL dbms.security.createUser"),
    ("call db.index.fulltext.createNodeIndex('x', ['X'], ['y'])", "CALL db.index.fulltext.createNodeIndex"),
    ("CALL db.labelsX()", "CALL db.labelsX"),
    ("CALL `apoc`.`periodic`.iterate('a', 'b', {})", "CALL apoc.periodic.iterate"),
    ("MATCH (n) WITH n CALL db.schema", "CALL db.schema"),  # the prefix alone is no procedure
    ("DROP INDEX entity_id_unique", "DROP"),
    ("CREATE INDEX x IF NOT EXISTS FOR (n:Entity) ON (n.x)", "CREATE"),
    ("MATCH (n) RETURN n /* a comment */ CREATE (m)", "CREATE"),
    ("RETURN 'CREATE' AS s CREATE (m)", "CREATE"),  # the keyword outside the string counts
    ("MATCH (n) // SET\nSET n.a = 1", "SET"),
    ("MATCH (n:`Entity`)\tDeLeTe n", "DELETE"),
    ("USE system SHOW USERS", "USE"),
    ("MATCH (n) WITH n ON CREATE SET n.a = 1", "CREATE"),
]


@pytest.mark.parametrize(("query", "clause"), REFUSED)
def test_write_clauses_are_refused_naming_the_clause(query, clause):
    with pytest.raises(ReadOnlyViolation) as refused:
        check_read_only(query)
    assert refused.value.field == "query" and refused.value.clause == clause
    assert clause.split()[0] in refused.value.reason


ALLOWED = [
    "MATCH (n:Entity) RETURN n LIMIT 5",
    "RETURN 'CREATE (n) DETACH DELETE n' AS harmless",
    'MATCH (n) WHERE n.name = "merge set remove" RETURN n',
    "MATCH (n) RETURN n // then CREATE (m)\n",
    "MATCH (n) /* DELETE n */ RETURN count(n)",
    "MATCH (n:`CREATE`) RETURN n.`DELETE` AS `SET`",
    "MATCH (n) RETURN n.set, n.delete, {create: 1, merge: 2} AS m",
    "MATCH (n) WHERE n:Create OR n:Remove RETURN n",
    "RETURN 'it\\'s a CREATE' AS s",
    "RETURN \"a \\\" MERGE \" AS s",
    "CALL db.labels()",
    "CALL db.relationshipTypes() YIELD relationshipType RETURN relationshipType",
    "call DB.PROPERTYKEYS()",
    "CALL db.schema.visualization()",
    "CALL { MATCH (n) RETURN n } RETURN n",
    "MATCH (n) CALL (n) { RETURN n.id AS i } RETURN i",
    "MATCH (n) WHERE n.id IN $ids RETURN n;",
    "EXPLAIN MATCH (n) RETURN n",
    "MATCH (n) RETURN n.name AS name ORDER BY name DESC SKIP 2 LIMIT 3  ;  // done",
]


@pytest.mark.parametrize("query", ALLOWED)
def test_reads_pass_including_keywords_in_strings_comments_and_names(query):
    assert check_read_only(query).strip()


@pytest.mark.parametrize(("query", "clause"), [
    ("RETURN 1; RETURN 2", ";"),
    ("MATCH (n) RETURN n; MATCH (n) DETACH DELETE n", ";"),
    (";", ";"),
    ("RETURN 'unterminated", "'"),
    ('RETURN "a\\"', '"'),
    ("MATCH (n:`Entity) RETURN n", "`"),
    ("RETURN 1 /* open", "/*"),
    ("   ", ""),
    ("// only a comment", ""),
])
def test_one_whole_statement_only(query, clause):
    with pytest.raises(ReadOnlyViolation) as refused:
        check_read_only(query)
    assert refused.value.clause == clause and refused.value.field == "query"


def test_a_trailing_semicolon_is_dropped_and_positions_are_reported():
    assert check_read_only("RETURN 1 ;  // end") == "RETURN 1 "
    with pytest.raises(ReadOnlyViolation, match="line 3, column 3"):
        check_read_only("MATCH (n)\nWITH n\n  SET n.a = 1")
    kinds = [(t.kind, t.text) for t in tokenize("MATCH (n {a: 'x//y'}) RETURN `b``c`, $p // c")]
    assert ("string", "'x//y'") in kinds and ("name", "b`c") in kinds and ("param", "$p") in kinds
    assert all(text != "c" for _, text in kinds[-1:])


# --- the endpoint ---------------------------------------------------------------------------------

@pytest.fixture
def seeded(store):
    seed_graph(store)
    return store


def _counts(store):
    counts = store.counts()
    return counts.total_nodes, counts.total_edges


@pytest.mark.integration
@pytest.mark.parametrize("query", ["MATCH (n) DETACH DELETE n", "create (x:Entity {id: 'zoo:x', name: 'x'})",
                                   "MATCH (n:Entity {id: 'zoo:cat'}) SET n.name = 'dog'",
                                   "CALL apoc.periodic.iterate('MATCH (n) RETURN n', 'DELETE n', {})"])
def test_writes_get_422_naming_query_and_change_nothing(make_client, seeded, query):
    client = make_client(graph=seeded)
    before = _counts(seeded)
    response = client.post("/v1/cypher", json={"query": query})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "query"] and "refused" in detail["msg"]
    assert _counts(seeded) == before
    assert seeded.get_node("zoo:cat").properties["name"] == "cat"


@pytest.mark.integration
def test_rows_and_graph_of_a_read(make_client, seeded):
    client = make_client(graph=seeded)
    body = client.post("/v1/cypher", json={
        "query": "MATCH (h:Entity {id: $id})-[r]->(t) RETURN h, r, t, t.name AS name ORDER BY name",
        "parameters": {"id": "zoo:cat"}}).json()
    assert body["columns"] == ["h", "r", "t", "name"] and not body["truncated"]
    assert [row[3] for row in body["rows"]] == ["farm", "fish", "house"]
    assert {n["id"] for n in body["nodes"]} == {"zoo:cat", "zoo:farm", "zoo:fish", "zoo:house"}
    generated = next(r for r in body["relationships"] if r["end"] == "zoo:farm")
    assert generated["start"] == "zoo:cat" and generated["type"] == "LIVES_IN"
    assert generated["properties"]["job_id"] == "job-seed" and generated["properties"]["confidence"] == 0.42
    assert body["rows"][0][0]["kind"] == "node" and body["rows"][0][1]["kind"] == "relationship"
    labels = client.post("/v1/cypher", json={"query": "CALL db.labels()"}).json()
    assert "Entity" in {row[0] for row in labels["rows"]}


@pytest.mark.integration
def test_the_row_limit_applies(make_client, seeded):
    client = make_client(graph=seeded, cypher_max_rows=3)
    everything = "MATCH (n:Entity) RETURN n.id AS id"
    body = client.post("/v1/cypher", json={"query": everything}).json()
    assert len(body["rows"]) == 3 and body["truncated"] and body["row_limit"] == 3
    assert len(client.post("/v1/cypher", json={"query": everything, "limit": 2}).json()["rows"]) == 2
    # A client cannot raise the limit past the setting.
    assert len(client.post("/v1/cypher", json={"query": everything, "limit": 500}).json()["rows"]) == 3
    few = client.post("/v1/cypher", json={"query": "MATCH (n:Entity {id: 'zoo:cat'}) RETURN n.id"}).json()
    assert len(few["rows"]) == 1 and not few["truncated"]


@pytest.mark.integration
def test_bad_statements_and_bodies_get_422(make_client, seeded):
    client = make_client(graph=seeded)
    syntax = client.post("/v1/cypher", json={"query": "MATCH (n RETURN n"})
    assert syntax.status_code == 422 and syntax.json()["detail"][0]["loc"] == ["body", "query"]
    two = client.post("/v1/cypher", json={"query": "RETURN 1; RETURN 2"})
    assert two.status_code == 422 and "one statement" in two.json()["detail"][0]["msg"]
    assert client.post("/v1/cypher", json={"query": ""}).status_code == 422
    assert client.post("/v1/cypher", json={"query": "RETURN 1", "limit": 0}).status_code == 422
    assert client.post("/v1/cypher", json={"query": "RETURN 1", "extra": 1}).status_code == 422


@pytest.mark.integration
def test_the_time_limit_answers_504(make_client, seeded):
    client = make_client(graph=seeded, cypher_timeout_s=0.2)
    slow = "UNWIND range(1, 3000000) AS x WITH x WHERE x % 7 = 0 RETURN count(x) AS c"
    response = client.post("/v1/cypher", json={"query": slow})
    assert response.status_code == 504 and "KGFORGE_CYPHER_TIMEOUT_S" in response.json()["detail"]


@pytest.mark.integration
def test_a_write_that_passed_the_checker_would_be_rolled_back(seeded):
    """The second layer alone (the checker bypassed): the transaction is never committed."""
    before = _counts(seeded)
    columns, rows, truncated = readonly._records(
        seeded, "CREATE (n:Entity {id: 'zoo:ghost', name: 'ghost'}) RETURN n.id AS id", {}, row_limit=5, timeout_s=5)
    assert rows == [["zoo:ghost"]]  # it ran...
    assert seeded.get_node("zoo:ghost") is None and _counts(seeded) == before  # ...and left nothing


def test_a_parameter_outside_bolts_integer_range_is_a_422_naming_it(make_client, store):
    """Found by the fuzz test: 2**63 reached the driver's packer and became a 500."""
    client = make_client(graph=store)
    response = client.post("/v1/cypher", json={"query": "RETURN $x AS x", "parameters": {"x": [1, {"y": 2 ** 63}]}})
    assert response.status_code == 422, response.text
    assert "parameters" in response.text and "64-bit" in response.text
    assert client.post("/v1/cypher", json={"query": "RETURN $x AS x", "parameters": {"x": 2 ** 63 - 1}}).status_code == 200
