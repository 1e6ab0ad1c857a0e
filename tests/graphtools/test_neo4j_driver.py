"""The plain ``neo4j`` driver on the embedded database: what an analyst types first works, and each
Bolt feature the README lists as missing or different is checked here by trying it (so that the
list fails loudly when ArcadeDB changes).

These tests need only kgforge's own dependencies (``neo4j`` is one)."""

from __future__ import annotations

import time

import neo4j
import pytest
from neo4j import Query
from neo4j.exceptions import ClientError, DatabaseError, Neo4jError

from kgforge.graph_tools import ReadOnlyViolation, check_database, read_structured_schema, run_read_only

pytestmark = pytest.mark.integration


# --- the recipe ----------------------------------------------------------------------------------
def test_what_an_analyst_types_first(seeded, driver, target):
    records, summary, keys = driver.execute_query(
        "MATCH (a:Entity)-[r:EATS]->(f:Entity) WHERE a.name = $name RETURN f.name AS food, r.confidence AS c",
        name="cat", database_=target.database)
    assert [r.data() for r in records] == [{"food": "fish", "c": 0.9}] and keys == ["food", "c"]
    with driver.session(database=target.database) as session:
        node = session.run("MATCH (n:Entity {id: $id}) RETURN n", id="zoo:dog").single()["n"]
        assert isinstance(node, neo4j.graph.Node) and node.labels == {"Entity"} and node["name"] == "dog"
        path = session.run("MATCH p = (:Entity {id: 'zoo:cow'})-[:LIVES_IN]->(h) RETURN p").single()["p"]
        assert isinstance(path, neo4j.graph.Path) and path.end_node["name"] == "farm"
        assert path.relationships[0].type == "LIVES_IN"
        near = session.run("MATCH (:Entity {id: 'zoo:cat'})-[*1..2]-(x) RETURN count(DISTINCT x) AS n").single()["n"]
        assert near == 3  # fish, house, and the dog through the house
        shortest = session.run("MATCH (a:Entity {id: 'zoo:cat'}), (b:Entity {id: 'zoo:dog'}) "
                               "MATCH p = shortestPath((a)-[*..4]-(b)) RETURN length(p) AS l").single()["l"]
        assert shortest == 2
        assert "Entity" in session.run("CALL db.labels() YIELD label RETURN label").value()
        assert {"EATS", "LIVES_IN"} <= set(session.run("CALL db.relationshipTypes()").value())
        counts = dict(session.run("MATCH (n:Entity) RETURN n.domain AS d, count(*) AS c").values())
        assert counts == {"zoo": 8}


def test_explicit_transactions_commit_and_roll_back(seeded, driver, target):
    with driver.session(database=target.database) as session:
        tx = session.begin_transaction()
        tx.run("CREATE (:Entity {id: 'zoo:tmp', name: 'tmp'})").consume()
        tx.rollback()
        assert session.run("MATCH (n:Entity {id: 'zoo:tmp'}) RETURN count(n) AS c").single()["c"] == 0


def test_kgforge_schema_over_bolt_alone(seeded, driver, target):
    structured = read_structured_schema(driver, target.database)
    assert {"start": "Entity", "type": "EATS", "end": "Entity"} in structured["relationships"]
    assert {"property": "domain", "type": "STRING"} in structured["node_props"]["Entity"]


# --- database names ------------------------------------------------------------------------------
def test_neo4j_and_system_names_read_the_kgforge_graph(seeded, driver, target):
    """ArcadeDB maps "", "neo4j" and "system" to its default database: not refusable from kgforge."""
    for name in ("neo4j", "system", None):
        with driver.session(database=name) as session:
            assert session.run("MATCH (n:Entity) RETURN count(n) AS c").single()["c"] == 8
        assert check_database(driver, name or "") == target.database
    assert check_database(driver, target.database) == target.database
    with pytest.raises(ClientError, match="DatabaseNotFound|does not exist"):
        driver.execute_query("RETURN 1", database_="no_such_database")
    with pytest.raises(ValueError, match="'no_such_database' does not exist"):
        check_database(driver, "no_such_database")


# --- what the embedded database lacks or does differently (the README's list) ----------------------
@pytest.mark.parametrize("call", ["CALL apoc.meta.data()", "CALL apoc.schema.nodes()",
                                  "CALL db.schema.nodeTypeProperties()", "CALL db.schema.relTypeProperties()",
                                  "CALL dbms.procedures()", "RETURN apoc.version()"])
def test_missing_procedures(driver, target, call):
    with pytest.raises(DatabaseError, match="Unknown (procedure|function)"):
        driver.execute_query(call, database_=target.database)


def test_apoc_subset_that_exists(seeded, driver, target):
    # apoc.merge.* exist (neo4j-graphrag's Neo4jWriter relies on apoc.merge.relationship) ...
    records, _, _ = driver.execute_query(
        "CALL apoc.merge.node(['Entity'], {id: 'zoo:apoc'}, {name: 'apoc'}, {}) YIELD node RETURN node.name AS n",
        database_=target.database)
    assert records[0]["n"] == "apoc"
    # ... and apoc.meta.schema / nodeTypeProperties answer, but without property keys
    value = driver.execute_query("CALL apoc.meta.schema()", database_=target.database)[0][0]["value"]
    assert all(label["properties"] == [] for label in value["nodeLabels"])
    with pytest.raises(DatabaseError, match="apoc.create.addLabels"):
        driver.execute_query("MATCH (n:Entity {id: 'zoo:cat'}) CALL apoc.create.addLabels(n, ['X']) YIELD node "
                             "RETURN node", database_=target.database)


def test_schema_visualization_has_another_shape(seeded, driver, target):
    records, _, keys = driver.execute_query("CALL db.schema.visualization()", database_=target.database)
    assert keys == ["name", "type", "properties"]  # Neo4j: one row with `nodes` and `relationships`
    assert {"name": "EATS", "type": "relationship", "properties": []} in [r.data() for r in records]


def test_property_keys_are_not_listed(seeded, driver, target):
    assert driver.execute_query("CALL db.propertyKeys()", database_=target.database)[0] == []


def test_vector_and_fulltext_indexes_cannot_be_created(driver, target):
    for statement in ("CREATE VECTOR INDEX probe_vec IF NOT EXISTS FOR (n:Chunk) ON (n.embedding) "
                      "OPTIONS {indexConfig: {`vector.dimensions`: 3, `vector.similarity_function`: 'cosine'}}",
                      "CREATE FULLTEXT INDEX probe_ft IF NOT EXISTS FOR (n:Chunk) ON EACH [n.text]"):
        with pytest.raises(Neo4jError, match="Only standard, RANGE and TEXT index types are supported"):
            driver.execute_query(statement, database_=target.database)


def test_explain_reports_every_query_as_a_write(seeded, driver, target):
    _, plain, _ = driver.execute_query("MATCH (n:Entity) RETURN n.name", database_=target.database)
    records, explained, _ = driver.execute_query("EXPLAIN MATCH (n:Entity) RETURN n.name", database_=target.database)
    assert plain.query_type == "r" and explained.query_type == "w" and records == []
    assert "NodeByLabelScan" in explained.plan["args"]["string-representation"]  # one text, no operator tree
    assert explained.plan["children"] == []
    records, profiled, _ = driver.execute_query("PROFILE MATCH (n:Entity) RETURN n.name", database_=target.database)
    assert len(records) == 8 and profiled.profile["dbHits"] == 0  # executes; no db hits counted


def test_read_access_mode_is_not_enforced(seeded, driver, target):
    with driver.session(database=target.database, default_access_mode=neo4j.READ_ACCESS) as session:
        session.execute_read(lambda tx: tx.run("CREATE (:Entity {id: 'zoo:written-in-read'})").consume())
    assert driver.execute_query("MATCH (n:Entity {id: 'zoo:written-in-read'}) RETURN count(n) AS c",
                                database_=target.database)[0][0]["c"] == 1


def test_run_read_only_refuses_writes_and_keeps_nothing(seeded, driver, target):
    assert run_read_only(driver, target.database, "MATCH (n:Entity {name: $n}) RETURN n.id AS id", {"n": "cat"}) \
        == [{"id": "zoo:cat"}]
    with pytest.raises(ReadOnlyViolation, match="refused"):
        run_read_only(driver, target.database, "MATCH (n:Entity {name: 'cat'}) SET n.name = 'tiger' RETURN n")
    with pytest.raises(ReadOnlyViolation):
        run_read_only(driver, target.database, "CREATE (:Entity {id: 'zoo:sneaky'})")
    assert driver.execute_query("MATCH (n:Entity) WHERE n.name = 'tiger' OR n.id = 'zoo:sneaky' RETURN count(n) AS c",
                                database_=target.database)[0][0]["c"] == 0


def test_transaction_timeout_is_ignored(driver, target):
    started = time.perf_counter()
    with driver.session(database=target.database) as session:
        count = session.run(Query("UNWIND range(1, 1000000) AS i WITH i WHERE i % 7 = 0 RETURN count(*) AS c",
                                  timeout=0.01)).single()["c"]
    assert count == 142857  # Neo4j would fail it with TransactionTimedOut after 10 ms
    assert time.perf_counter() - started > 0.01


def test_no_bookmarks_and_one_server(driver, target):
    with driver.session(database=target.database) as session:
        session.run("RETURN 1").consume()
        assert not session.last_bookmarks().raw_values  # no causal-consistency bookmarks
    names = [r["name"] for r in driver.execute_query("SHOW DATABASES", database_=target.database)[0]]
    assert target.database in names and "system" in names
