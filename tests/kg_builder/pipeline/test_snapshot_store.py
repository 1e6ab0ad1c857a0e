"""StoreSnapshot (``GraphSnapshot.from_store``) against the real embedded database: it answers what
the whole-graph snapshot answers for its domain, reads nothing of another domain, honours
``exclude_job``, and takes "entities like S" from the persistent entity index, which is built
once, reused without re-embedding, and updated when a job adds nodes.
"""

from __future__ import annotations

import pytest

from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord
from kg_builder.ingest import import_dataset
from kg_builder.models.encoder import TextEncoder
from kg_builder.pipeline.knowledge import KnowledgeBuilder
from kg_builder.pipeline.snapshot import Edge, EntityInfo, GraphSnapshot, StoreSnapshot
from kg_builder.retrieval.entity_index import EntityIndex
from kg_builder.settings import Settings
from kg_builder.graphdb import NodeWrite, TripleWrite

pytestmark = pytest.mark.integration

ZOO = {  # name: description; "jaguar" also names a car in the other domain
    "cat": "a small pet that eats fish", "dog": "a loyal pet that eats meat", "cow": "a farm animal eating grass",
    "sheep": "a woolly farm animal eating grass", "lion": "a wild cat of the savanna eating meat",
    "jaguar": "a big wild cat of the rainforest", "fish": "a food", "meat": "a food", "grass": "a plant food",
    "farm": "a place with fields", "house": "a place where people live", "savanna": "a wild grassland",
}
ZOO_TRIPLES = [("cat", "eats", "fish"), ("dog", "eats", "meat"), ("cow", "eats", "grass"), ("sheep", "eats", "grass"),
               ("lion", "eats", "meat"), ("jaguar", "eats", "meat"), ("cat", "lives_in", "house"),
               ("dog", "lives_in", "house"), ("cow", "lives_in", "farm"), ("sheep", "lives_in", "farm"),
               ("lion", "lives_in", "savanna")]
CARS = {"jaguar": "a British car maker", "volvo": "a Swedish car maker", "sweden": "a country", "uk": "a country"}
CAR_TRIPLES = [("jaguar", "made_in", "uk"), ("volvo", "made_in", "sweden")]


def kg(name: str, entities: dict[str, str], triples, relations) -> Dataset:
    return Dataset(name=name, kind="kg", entities=[EntityRecord(e, e, d) for e, d in entities.items()],
                   relations=[RelationRecord(r, r.replace("_", " ")) for r in relations],
                   triples={"train": [TripleRecord(*t) for t in triples]})


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()


@pytest.fixture
def graph(store):
    import_dataset(store, kg("zoo", ZOO, ZOO_TRIPLES, ["eats", "lives_in"]))
    import_dataset(store, kg("cars", CARS, CAR_TRIPLES, ["made_in"]))
    # What a job wrote: a new node (no domain, like the resolver's) and two edges.
    store.upsert_nodes([NodeWrite(label="Entity", id="kg:hay", name="hay", description="dried grass",
                                  props={"type": "food"}, job_id="job-1")])
    store.upsert_triples([TripleWrite("zoo:cow", "eats", "kg:hay", job_id="job-1"),
                          TripleWrite("zoo:lion", "lives_in", "zoo:farm", job_id="job-1")])
    return store


@pytest.fixture
def settings(tmp_path) -> Settings:
    EntityIndex.forget_open()
    yield Settings(home=tmp_path / "home")
    EntityIndex.forget_open()


def edge_set(edges) -> set[tuple[str, str, str]]:
    return {(e.head, e.relation, e.tail) for e in edges}


@pytest.mark.parametrize("exclude_job", [None, "job-1"])
def test_the_lazy_snapshot_answers_like_the_whole_one(graph, exclude_job):
    whole = GraphSnapshot.read_whole(graph, "zoo", exclude_job=exclude_job)
    lazy = GraphSnapshot.from_store(graph, "zoo", exclude_job=exclude_job)
    assert isinstance(lazy, StoreSnapshot) and lazy.relations == whole.relations == {"eats": "eats",
                                                                                    "lives_in": "lives in"}
    ids = list(whole.entities) + ["cars:jaguar", "kg:nothing"]
    for node_id in ids:
        assert (node_id in lazy.entities) == (node_id in whole.entities), node_id
        assert lazy.entities.get(node_id) == whole.entities.get(node_id)
        assert edge_set(lazy.out_edges(node_id)) == edge_set(whole.out_edges(node_id)), node_id
        assert edge_set(lazy.in_edges(node_id)) == edge_set(whole.in_edges(node_id)), node_id
        for relation in whole.relations:
            assert lazy.known_tails(node_id, relation) == whole.known_tails(node_id, relation)
        assert lazy.relation_profile(node_id) == whole.relation_profile(node_id)
    for relation in [*whole.relations, "made_in"]:
        assert lazy.relation_range(relation) == whole.relation_range(relation), relation
    assert lazy.relation_frequency(ids) == whole.relation_frequency(ids)
    assert lazy.has("zoo:cat", "eats", "zoo:fish") and not lazy.has("zoo:cat", "eats", "zoo:meat")
    for name in ("Jaguar", " HAY ", "volvo", "cat"):
        assert sorted(e.id for e in lazy.find(name)) == sorted(e.id for e in whole.find(name)), name
    assert sorted(lazy.entities) == sorted(whole.entities) and len(lazy.entities) == len(whole.entities)
    # The job's own writes are visible unless excluded.
    assert ("kg:hay" in lazy.entities) == (exclude_job is None)
    assert lazy.has("zoo:lion", "lives_in", "zoo:farm") == (exclude_job is None)


def test_a_job_of_one_domain_reads_no_node_of_another(graph):
    lazy = GraphSnapshot.from_store(graph, "zoo")
    assert [e.id for e in lazy.find("jaguar")] == ["zoo:jaguar"]  # the car maker is another domain's
    assert "cars:volvo" not in lazy.entities and lazy.find("volvo") == []
    assert lazy.relation_range("made_in") == {} and "made_in" not in lazy.relations
    for node_id in ("zoo:jaguar", "zoo:cow", "zoo:cat"):
        lazy.out_edges(node_id), lazy.in_edges(node_id)
    read = [i for i, info in lazy.entities.cache.items() if info is not None]
    assert read and all(i.startswith("zoo:") or i.startswith("kg:") for i in read)
    assert lazy.reads["relation_range"] == 0 and lazy.reads["domain_entities"] == 0  # nothing whole-domain


def test_added_edges_and_entities_are_seen_like_in_memory(graph):
    whole = GraphSnapshot.read_whole(graph, "zoo")
    lazy = GraphSnapshot.from_store(graph, "zoo")
    for snapshot in (whole, lazy):
        snapshot.relation_range("eats"), snapshot.out_edges("zoo:dog")
        snapshot.add_entity(EntityInfo("kg:bone", "bone", "a dog's treat"))
        snapshot.add_edges([Edge("zoo:dog", "eats", "kg:bone"), Edge("zoo:dog", "eats", "zoo:meat")])
    assert edge_set(lazy.out_edges("zoo:dog")) == edge_set(whole.out_edges("zoo:dog"))
    assert lazy.relation_range("eats") == whole.relation_range("eats") and lazy.relation_range("eats")["kg:bone"] == 1
    assert [e.id for e in lazy.find("Bone")] == ["kg:bone"] and lazy.entities["kg:bone"].name == "bone"


def count_encoded(monkeypatch, encoder: TextEncoder) -> list[int]:
    """Record how many texts each ``encode`` call embeds (the real encoder still does the work)."""
    calls: list[int] = []
    original = encoder.encode

    def encode(texts, **kwargs):
        calls.append(len(texts))
        return original(texts, **kwargs)

    monkeypatch.setattr(encoder, "encode", encode)
    return calls


def test_similar_entities_come_from_the_persistent_index_built_once(graph, settings, encoder, monkeypatch):
    lion = EntityInfo("zoo:lion", "lion", ZOO["lion"])
    in_memory = KnowledgeBuilder(GraphSnapshot.read_whole(graph, "zoo"), encoder).similar(lion, k=4)
    calls = count_encoded(monkeypatch, encoder)

    first = KnowledgeBuilder(GraphSnapshot.from_store(graph, "zoo", settings=settings), encoder).similar(lion, k=4)
    assert first == in_memory and "zoo:jaguar" in first
    assert calls == [12, 1]  # the zoo's 12 entities, once (index build), then S; no car, no kg: node
    calls.clear()

    EntityIndex.forget_open()  # a new worker process: the index comes from disk
    second = KnowledgeBuilder(GraphSnapshot.from_store(graph, "zoo", settings=settings), encoder).similar(lion, k=4)
    assert second == first and calls == [1]  # only S is embedded: nothing re-embedded


def test_new_nodes_are_added_to_the_index_and_a_replay_does_not_see_its_own(graph, settings, encoder):
    snapshot = GraphSnapshot.from_store(graph, "zoo", settings=settings)
    builder = KnowledgeBuilder(snapshot, encoder)
    tiger = EntityInfo("kg:tiger", "tiger", "a big striped wild cat", "animal")
    builder.similar(tiger, k=3)  # builds the index
    graph.upsert_nodes([NodeWrite(label="Entity", id="kg:puma", name="puma", description="a big wild cat",
                                  props={"type": "animal"}, job_id="job-2")])
    assert snapshot.index_entities([EntityInfo("kg:puma", "puma", "a big wild cat", "animal")]) == 1
    assert snapshot.index_entities([EntityInfo("kg:puma", "puma", "a big wild cat", "animal")]) == 0

    later = KnowledgeBuilder(GraphSnapshot.from_store(graph, "zoo", settings=settings), encoder)
    assert later.similar(tiger, k=3)[0] == "kg:puma"  # typed S: same type first
    replay = KnowledgeBuilder(GraphSnapshot.from_store(graph, "zoo", exclude_job="job-2", settings=settings), encoder)
    assert "kg:puma" not in replay.similar(tiger, k=3)
