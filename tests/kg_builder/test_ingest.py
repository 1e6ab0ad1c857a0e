"""Dataset import into the real embedded database, read back with Cypher (GraphStore reads)."""

import pytest

from kg_builder.datasets import load_dataset
from kg_builder.datasets.records import (
    Dataset,
    EntityRecord,
    InteractionRecord,
    ItemLinkRecord,
    ItemRecord,
    RelationRecord,
    TripleRecord,
)
from kg_builder.ingest import import_dataset

pytestmark = pytest.mark.integration


def tiny_kg() -> Dataset:
    return Dataset(
        name="tiny",
        kind="kg",
        entities=[EntityRecord("virus", "virus", "A small infectious agent."), EntityRecord("cell", "cell"),
                  EntityRecord("x'}) DETACH DELETE n //", "x'}) DETACH DELETE n //")],
        relations=[RelationRecord("infects", "infects"), RelationRecord("part of", "is part of")],
        triples={"train": [TripleRecord("virus", "infects", "cell")],
                 "dev": [TripleRecord("x'}) DETACH DELETE n //", "part of", "cell")]},
    )


def tiny_rec() -> Dataset:
    return Dataset(
        name="shop",
        kind="rec",
        items=[
            ItemRecord("1", title="Stapler", brand="ACME", categories=("Office", "Desk", "Staplers"), asin="B001"),
            ItemRecord("2", title="Staples", brand="Acme!", categories=("Office", "Desk", "Staples")),
            ItemRecord("3", title="Pen", brand_id="7", category_ids=("4",)),
        ],
        interactions=[InteractionRecord("u1", "1", "train", timestamp=10, position=0),
                      InteractionRecord("u1", "2", "valid", timestamp=20, position=1),
                      InteractionRecord("u2", "3", "train", rating=4.5),
                      InteractionRecord("u2", "999", "train")],
        item_links=[ItemLinkRecord("1", "complement", "2"), ItemLinkRecord("2", "substitute", "404")],
    )


def test_kg_import_reads_back(store):
    report = import_dataset(store, tiny_kg())
    assert report.nodes == {"Entity": 3, "Relation": 2}
    assert store.get_node("tiny:virus").properties["description"] == "A small infectious agent."
    injected = store.get_node("tiny:x'}) DETACH DELETE n //")
    assert injected.properties["name"] == "x'}) DETACH DELETE n //"
    triples = {(t.head, t.relation, t.tail) for t in store.export_triples()}
    assert triples == {("tiny:virus", "infects", "tiny:cell"), ("tiny:x'}) DETACH DELETE n //", "part of", "tiny:cell")}
    (edge,) = [e for e in store.neighbourhood("tiny:virus")]
    assert edge.properties["split"] == "train" and edge.properties["sources"] == ["dataset:tiny"]
    assert {r.type: r.description for r in store.relation_pool()} == {"INFECTS": "infects", "PART_OF": "is part of"}


def test_rec_import_builds_catalogue_and_interactions(store):
    report = import_dataset(store, tiny_rec())
    counts = store.counts()
    assert counts.nodes == {"Item": 3, "Category": 5, "Brand": 2, "User": 2, "Relation": 2}
    # ACME and Acme! normalise to one brand node; the id-only brand keeps its dataset-scoped id
    assert store.get_node("brand:acme").properties["name"] == "ACME"
    assert store.get_node("shop:brand:7", label="Brand") is not None
    assert counts.edges == {"SUBCATEGORY_OF": 3, "IN_CATEGORY": 3, "HAS_BRAND": 3, "COMPLEMENTARY_TO": 1,
                            "INTERACTED": 3}
    assert report.skipped == 2  # the interaction with item 999 and the link to item 404
    item = store.get_node("amazon:B001")  # ASIN-keyed item
    assert item.label == "Item" and item.properties["name"] == "Stapler"
    hops = {(e.head, e.type, e.tail) for e in store.neighbourhood("amazon:B001", label="Item")}
    assert ("amazon:B001", "IN_CATEGORY", "category:office/desk/staplers") in hops
    assert ("shop:user:u1", "INTERACTED", "amazon:B001") in hops
    path = {(e.head, e.tail) for e in store.neighbourhood("category:office/desk/staplers", label="Category")}
    assert ("category:office/desk/staplers", "category:office/desk") in path


def test_flat_categories_are_independent_labels(store):
    dataset = Dataset(name="movies", kind="rec", category_paths=False,
                      items=[ItemRecord("1", title="Toy Story", categories=("Animation", "Comedy"))])
    import_dataset(store, dataset)
    assert store.counts().edges == {"IN_CATEGORY": 2}
    assert store.get_node("category:comedy", label="Category") is not None


def test_importing_twice_changes_nothing(store):
    for dataset in (tiny_kg(), tiny_rec()):
        import_dataset(store, dataset)
    first = store.counts()
    for dataset in (tiny_kg(), tiny_rec()):
        import_dataset(store, dataset)
    assert store.counts() == first
    assert store.count_duplicate_edges() == 0


def test_umls_import_is_complete_and_idempotent(store, data_dir):
    dataset = load_dataset("umls", data_dir)
    import_dataset(store, dataset)
    counts = store.counts()
    assert counts.nodes["Entity"] == 135 and counts.nodes["Relation"] == 46
    expected = {(f"umls:{t.head}", t.relation, f"umls:{t.tail}") for t in dataset.all_triples()}
    assert len(expected) == 5216 + 652 + 661
    found = {(t.head, t.relation, t.tail) for t in store.export_triples()}
    assert found == expected
    import_dataset(store, dataset)
    assert store.counts() == counts
    assert store.count_duplicate_edges() == 0
