"""GraphStore against the real embedded ArcadeDB; results are read back with Cypher."""

import pytest

from kg_builder.errors import DatabaseError, InvalidInputError
from kg_builder.graphdb import NodeWrite, TripleWrite

pytestmark = pytest.mark.integration

INJECTION_NAMES = [
    "x'}) DETACH DELETE n //",
    'x"}) MATCH (m) DETACH DELETE m //',
    "`; MATCH (n) DETACH DELETE n",
    "$rows",
    "$now",
    "$id",
    "$limit",
    "{{label}}",
    "Robert'); DROP TABLE students;--",
]


def entities(*ids):
    return [NodeWrite(label="Entity", id=i, name=i.upper()) for i in ids]


def test_schema_setup_is_idempotent(store):
    store.setup_schema()
    store.setup_schema()
    names = {c["name"] for c in store.constraints()}
    assert {"entity_id_unique", "item_id_unique", "relation_id_unique"} <= names


def test_upsert_twice_changes_no_count(store):
    store.upsert_nodes(entities("a", "b", "c"))
    triples = [TripleWrite("a", "part of", "b"), TripleWrite("b", "part of", "c"), TripleWrite("a", "isa", "c")]
    store.upsert_triples(triples)
    first = store.counts()
    store.upsert_nodes(entities("a", "b", "c"))
    store.upsert_triples(triples)
    assert store.counts() == first
    assert first.nodes == {"Entity": 3} and first.edges == {"PART_OF": 2, "ISA": 1}
    assert store.count_duplicate_edges() == 0


def test_duplicate_rows_in_one_batch_make_one_edge(store):
    store.upsert_nodes(entities("a", "b"))
    store.upsert_triples([TripleWrite("a", "isa", "b", sources=("x",)), TripleWrite("a", "isa", "b", sources=("y",))])
    assert store.counts().edges == {"ISA": 1}
    (edge,) = store.neighbourhood("a")
    assert sorted(edge.properties["sources"]) == ["x", "y"]


def test_duplicate_rows_in_one_call_are_merged_before_the_write(store):
    """Repeated keys in one call make one node and one edge carrying every row's provenance;
    progress still counts every input row."""
    nodes = [NodeWrite(label="Entity", id="a", name="A", aliases=("alpha",), sources=("s1",)),
             NodeWrite(label="Entity", id="a", name="A2", aliases=("aa",), sources=("s2",)),
             NodeWrite(label="Entity", id="b", name="B")]
    seen = []
    assert store.upsert_nodes(nodes, progress=seen.append) == 2
    assert sum(seen) == 3
    a = store.get_node("a", "Entity").properties
    assert a["name"] == "A2" and a["aliases"] == ["alpha", "aa"] and a["sources"] == ["s1", "s2"]
    triples = [TripleWrite("a", "isa", "b", confidence=0.3, sources=("x",), evidence=("d1",), job_id="j1"),
               TripleWrite("a", "isa", "b", confidence=0.8, sources=("y", "x"), evidence=("d2",), job_id="j2"),
               TripleWrite("b", "isa", "a", confidence=0.5)]
    seen.clear()
    assert store.upsert_triples(triples, progress=seen.append) == 2
    assert sum(seen) == 3
    (edge,) = [e for e in store.neighbourhood("a") if e.head == "a"]
    props = edge.properties
    assert (props["confidence"], props["sources"], props["evidence"], props["job_id"]) == (0.8, ["x", "y"], ["d1", "d2"], "j1")


def test_a_batch_mixing_new_and_existing_edges_creates_and_updates(store):
    store.upsert_nodes(entities("a", "b", "c"))
    store.upsert_triples([TripleWrite("a", "isa", "b", confidence=0.2, sources=("old",), props={"note": "first"})])
    created_at = store.neighbourhood("a")[0].properties["created_at"]
    store.upsert_triples([TripleWrite("a", "isa", "b", confidence=0.6, sources=("new",)),
                          TripleWrite("a", "isa", "c", confidence=0.7, sources=("new",), props={"note": "second"})])
    edges = {e.tail: e.properties for e in store.neighbourhood("a")}
    assert store.counts().edges == {"ISA": 2} and store.count_duplicate_edges() == 0
    assert edges["b"]["sources"] == ["old", "new"] and edges["b"]["confidence"] == 0.6
    assert edges["b"]["note"] == "first" and edges["b"]["created_at"] == created_at
    assert edges["c"]["note"] == "second" and edges["c"]["relation"] == "isa" and edges["c"]["confidence"] == 0.7


def test_edge_provenance_is_merged(store):
    store.upsert_nodes(entities("s", "t"))
    store.upsert_triples([TripleWrite("s", "treats", "t", confidence=0.4, sources=("llm:qwen",), evidence=("doc1",),
                                      job_id="job-1")])
    store.upsert_triples([TripleWrite("s", "treats", "t", confidence=0.9, sources=("dense",), evidence=("doc2",),
                                      job_id="job-2")])
    store.upsert_triples([TripleWrite("s", "treats", "t", confidence=0.2, sources=("dense",), evidence=("doc1",))])
    (edge,) = store.neighbourhood("s")
    props = edge.properties
    assert edge.type == "TREATS" and props["relation"] == "treats"
    assert props["confidence"] == pytest.approx(0.9)  # the highest any writer gave
    assert props["sources"] == ["llm:qwen", "dense"]
    assert props["evidence"] == ["doc1", "doc2"]
    assert props["job_id"] == "job-1"  # the job that created it
    assert props["created_at"] <= props["updated_at"]


@pytest.mark.parametrize("name", INJECTION_NAMES)
def test_injection_names_are_stored_literally(store, name):
    store.upsert_nodes([NodeWrite(label="Entity", id=name, name=name, description=name), *entities("keep")])
    store.upsert_triples([TripleWrite(name, "isa", "keep")])
    node = store.get_node(name)
    assert node is not None and node.properties["name"] == name and node.properties["description"] == name
    assert store.get_node("keep") is not None
    assert store.counts().nodes == {"Entity": 2}
    assert [n.id for n in store.find_nodes_by_name(name)] == [name]


@pytest.mark.parametrize("rel_type", ["IS `A", "IS A", "X]->(m) DETACH DELETE m //", "9LIVES"])
def test_bad_relationship_types_are_rejected_before_any_write(store, rel_type):
    store.upsert_nodes(entities("a", "b"))
    with pytest.raises(InvalidInputError) as err:
        store.upsert_triples([TripleWrite("a", "ok", "b"), TripleWrite("a", "x", "b", rel_type=rel_type)])
    assert err.value.field == "type" and "not a valid identifier" in err.value.reason
    assert store.counts().edges == {}


def test_relation_names_with_backticks_and_spaces_are_kept_literally(store):
    mapping = store.register_relations([("has `part`", "a part"), ("located in", None)], source="test")
    assert mapping == {"has `part`": "HAS_PART", "located in": "LOCATED_IN"}
    store.upsert_nodes(entities("a", "b"))
    store.upsert_triples([TripleWrite("a", "has `part`", "b")])
    (triple,) = list(store.export_triples())
    assert (triple.type, triple.relation) == ("HAS_PART", "has `part`")
    pool = {r.type: r for r in store.relation_pool()}
    assert pool["HAS_PART"].name == "has `part`" and pool["HAS_PART"].description == "a part"


def test_relation_type_collision_is_an_error(store):
    with pytest.raises(InvalidInputError, match="both map to relationship type IS_A"):
        store.register_relations([("is a", None), ("is-a", None)], source="test")


def test_missing_endpoint_rolls_back_the_batch(store):
    store.upsert_nodes(entities("a", "b"))
    with pytest.raises(DatabaseError, match="Entity 'ghost'"):
        store.upsert_triples([TripleWrite("a", "isa", "b"), TripleWrite("a", "isa", "ghost")])
    assert store.counts().edges == {}


@pytest.mark.parametrize(
    ("write", "field"),
    [
        (NodeWrite(label="Entity", id=""), "id"),
        (NodeWrite(label="Person", id="p"), "label"),
        (NodeWrite(label="Entity", id="x", name="  "), "name"),
        (NodeWrite(label="Entity", id="x", props={"bad key": 1}), "props.bad key"),
        (NodeWrite(label="Entity", id="x", props={"k": {"nested": 1}}), "props.k"),
        (NodeWrite(label="Entity", id="x", props={"k": float("nan")}), "props.k"),
        (NodeWrite(label="Entity", id="x" * 600), "id"),
    ],
)
def test_invalid_nodes_name_the_field(store, write, field):
    with pytest.raises(InvalidInputError) as err:
        store.upsert_nodes([NodeWrite(label="Entity", id="ok"), write])
    assert err.value.field == field
    assert store.counts().nodes == {}


@pytest.mark.parametrize("confidence", [-0.1, 1.5, "high", True])
def test_confidence_must_be_a_probability(store, confidence):
    store.upsert_nodes(entities("a", "b"))
    with pytest.raises(InvalidInputError) as err:
        store.upsert_triples([TripleWrite("a", "isa", "b", confidence=confidence)])
    assert err.value.field == "confidence"


def test_reads(store):
    store.upsert_nodes([*entities("a", "b", "c", "d"), NodeWrite(label="Item", id="i1", name="Stapler")])
    store.upsert_triples([TripleWrite("a", "isa", "b"), TripleWrite("b", "isa", "c"), TripleWrite("c", "isa", "d"),
                          TripleWrite("i1", "about", "a", head_label="Item")])
    assert store.get_node("i1").label == "Item"
    assert store.get_node("i1", label="Entity") is None
    assert store.get_node("nope") is None
    assert [n.id for n in store.find_nodes_by_name("  stapler!", label="Item")] == ["i1"]
    one_hop = {(e.head, e.tail) for e in store.neighbourhood("b")}
    assert one_hop == {("a", "b"), ("b", "c")}
    two_hops = {(e.head, e.tail) for e in store.neighbourhood("b", hops=2)}
    assert two_hops == {("a", "b"), ("b", "c"), ("c", "d"), ("i1", "a")}
    assert len(store.neighbourhood("b", hops=2, limit=2)) == 2
    with pytest.raises(InvalidInputError):
        store.neighbourhood("b", hops=4)
    exported = {(t.head, t.relation, t.tail) for t in store.export_triples(fetch_size=2)}
    assert exported == {("a", "isa", "b"), ("b", "isa", "c"), ("c", "isa", "d"), ("i1", "about", "a")}
    assert store.counts().nodes == {"Entity": 4, "Item": 1}


def test_batches_smaller_than_the_input(store):
    store.batch_size = 7
    ids = [f"n{i}" for i in range(50)]
    calls = []
    assert store.upsert_nodes(entities(*ids), progress=calls.append) == 50
    assert calls == [7] * 7 + [1]
    store.upsert_triples([TripleWrite(a, "next", b) for a, b in zip(ids, ids[1:])])
    assert store.counts().edges == {"NEXT": 49}


def test_wipe(store):
    store.upsert_nodes(entities("a", "b"))
    store.upsert_triples([TripleWrite("a", "isa", "b")])
    assert store.wipe(batch=1) == 2
    assert store.counts().total_nodes == 0


@pytest.mark.parametrize("sources", [("ok", 1), ("ok", ["nested"]), ["ok", None]])
def test_provenance_lists_must_hold_strings(store, sources):
    store.upsert_nodes(entities("a", "b"))
    with pytest.raises(InvalidInputError) as err:
        store.upsert_triples([TripleWrite("a", "isa", "b", sources=sources)])
    assert err.value.field == "sources"
    assert store.counts().edges == {}


def test_concurrent_writers_of_the_same_triples_make_no_duplicates(store, db_settings):
    """Several jobs writing the same nodes and edges at once (workers) still leave one of each."""
    import threading

    from kg_builder.graphdb import GraphStore

    triples = [TripleWrite(f"n{i}", "next", f"n{i + 1}", sources=(f"w{i % 3}",)) for i in range(30)]
    errors = []

    def writer(k: int) -> None:
        try:
            with GraphStore.from_settings(db_settings) as own:
                own.upsert_nodes(entities(*[f"n{i}" for i in range(31)]))
                own.upsert_triples(triples[k % 2::1])
        except Exception as e:  # collected and asserted below  # noqa: BLE001
            errors.append(e)

    for _ in range(3):
        store.wipe()
        threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert store.counts().nodes == {"Entity": 31}
        assert store.counts().edges == {"NEXT": 30}
        assert store.count_duplicate_edges() == 0


def test_racing_writers_of_many_new_edges_lose_no_update(store, db_settings):
    """Four writers create the same 600 new edges at once, in different orders, each with its own
    source: one edge per triple survives, carrying all four sources (ArcadeDB fails the losers of
    each race with a concurrent-modification error; the managed transaction retries them)."""
    import threading

    from kg_builder.graphdb import GraphStore

    ids = [f"n{i}" for i in range(300)]
    store.upsert_nodes(entities(*ids))
    triples = [(ids[i], rel, ids[(i * 7 + k) % 300]) for i in range(300) for k, rel in ((1, "next"), (2, "skip"))]
    errors = []

    def writer(k: int) -> None:
        order = triples if k % 2 == 0 else triples[::-1]
        try:
            with GraphStore.from_settings(db_settings, max_transaction_retry_time=60) as own:
                own.upsert_triples(TripleWrite(h, r, t, sources=(f"w{k}",)) for h, r, t in order)
        except Exception as e:  # collected and asserted below  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.counts().edges == {"NEXT": 300, "SKIP": 300}
    assert store.count_duplicate_edges() == 0
    sources = store._query("MATCH ()-[r]->() RETURN r.sources AS s")
    assert all(sorted(row["s"]) == ["w0", "w1", "w2", "w3"] for row in sources)


def test_name_and_description_given_as_props_are_kept_and_normalised(store):
    store.upsert_nodes([NodeWrite(label="Entity", id="x", props={"name": "Red  Fox", "description": "d", "k": 1}),
                        NodeWrite(label="Entity", id="y", name="Y")])
    x = store.get_node("x", "Entity").properties
    assert (x["name"], x["description"], x["k"]) == ("Red  Fox", "d", 1)
    assert [n.id for n in store.find_nodes_by_name("red fox")] == ["x"]
    store.upsert_nodes([NodeWrite(label="Entity", id="y", props={"k": 2})])  # no name given: the name stays
    y = store.get_node("y", "Entity").properties
    assert (y["name"], y["k"]) == ("Y", 2)


@pytest.fixture
def merge_only(store):
    """The store on the path it takes against Neo4j: the MERGE-based update statements alone."""
    assert store.create_first  # ArcadeDB: create-missing first
    store._create_first = False
    yield store
    store._create_first = None


def test_the_neo4j_path_writes_the_same_graph(merge_only):
    store = merge_only
    nodes = entities("a", "b", "c") + [NodeWrite(label="Entity", id="a", name="A2", aliases=("aa",))]
    assert store.upsert_nodes(nodes) == 3
    triples = [TripleWrite("a", "isa", "b", confidence=0.3, sources=("x",)),
               TripleWrite("a", "isa", "b", confidence=0.8, sources=("y",)),
               TripleWrite("b", "part of", "c", props={"note": "n"})]
    assert store.upsert_triples(triples) == 2
    store.upsert_nodes(nodes)
    store.upsert_triples(triples)
    assert store.counts().nodes == {"Entity": 3} and store.counts().edges == {"ISA": 1, "PART_OF": 1}
    assert store.count_duplicate_edges() == 0
    edge = next(e for e in store.neighbourhood("a") if e.type == "ISA")
    assert edge.properties["sources"] == ["x", "y"] and edge.properties["confidence"] == 0.8
    assert store.get_node("a", "Entity").properties["aliases"] == ["aa"]
    with pytest.raises(DatabaseError, match="'missing'"):
        store.upsert_triples([TripleWrite("a", "isa", "missing")])
