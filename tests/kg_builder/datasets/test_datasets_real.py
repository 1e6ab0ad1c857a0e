"""Loaders against the real shared data folder: published counts and concrete records.

Skipped with a reason when the folder (``KGFORGE_DATA_DIR`` or ``../shared/data``) is absent.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from kg_builder.datasets import (
    DATASETS,
    EntityRecord,
    InteractionRecord,
    ItemLinkRecord,
    ItemRecord,
    RelationRecord,
    TripleRecord,
    available_datasets,
)
from kg_builder.datasets.text import read_table


def split_counts(dataset):
    return dict(Counter(record.split for record in dataset.interactions))


def users(dataset):
    return {record.user for record in dataset.interactions}


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_dataset_loads_with_its_registered_name_and_kind(real, name):
    dataset = real(name)
    assert (dataset.name, dataset.kind) == (name, DATASETS[name].kind)


def test_all_datasets_are_available(data_dir):
    assert available_datasets(data_dir) == list(DATASETS)


# --------------------------------------------------------------------------------------------
# KG benchmarks


@pytest.mark.parametrize(
    ("name", "entities", "relations", "splits"),
    [
        ("umls", 135, 46, {"train": 5216, "dev": 652, "test": 661}),
        ("wn18rr", 40_943, 11, {"train": 86_835, "dev": 3_034}),
        ("fb15k237", 14_541, 237, {"train": 272_115, "dev": 17_535}),
    ],
)
def test_kg_published_counts(real, name, entities, relations, splits):
    dataset = real(name)
    assert len(dataset.entities) == len({e.id for e in dataset.entities}) == entities
    assert len(dataset.relations) == relations
    assert {split: len(rows) for split, rows in dataset.triples.items()} == splits


@pytest.mark.parametrize("name", ["wn18rr", "fb15k237"])
def test_kg_every_entity_has_a_real_name(real, name):
    # entity2text covers every entity, so no name falls back to the id
    assert all(e.name and e.name != e.id for e in real(name).entities)


def test_umls_records(real):
    dataset = real("umls")
    entities = {e.id: e for e in dataset.entities}
    assert entities["idea_or_concept"].name == "idea or concept"
    assert entities["idea_or_concept"].description.startswith("In philosophy, ideas are usually taken")
    assert sum(e.description is not None for e in dataset.entities) == 135
    assert all(e.name == e.id.replace("_", " ") for e in dataset.entities)  # names from entity2text
    assert RelationRecord("derivative_of", "derivative of") in dataset.relations
    assert dataset.triples["train"][0] == TripleRecord(
        "acquired_abnormality", "location_of", "experimental_model_of_disease"
    )


def test_wn18rr_records(real):
    dataset = real("wn18rr")
    entities = {e.id: e for e in dataset.entities}
    assert entities["14854262"] == EntityRecord(
        "14854262", "stool", "solid excretory product evacuated from the bowels"
    )
    assert entities["10227266"].name == "junior"
    assert entities["10227266"].description == 'the younger of two persons; "she is two years my junior"'
    assert all(e.description for e in dataset.entities)
    assert dataset.triples["train"][0] == TripleRecord("00260881", "_hypernym", "00260622")
    assert RelationRecord("_has_part", "has part") in dataset.relations


def test_fb15k237_records(real):
    dataset = real("fb15k237")
    entities = {e.id: e for e in dataset.entities}
    assert entities["/m/016ywr"] == EntityRecord("/m/016ywr", "Jeremy Irons", None)
    assert all(e.description is None for e in dataset.entities)
    assert dataset.triples["train"][0] == TripleRecord(
        "/m/027rn", "/location/country/form_of_government", "/m/06cx9"
    )
    assert dataset.triples["dev"][0] == TripleRecord("/m/07pd_j", "/film/film/genre", "/m/02l7c8")
    relations = {r.id: r.text for r in dataset.relations}
    assert relations["/music/artist/origin"] == "music artist origin"


# --------------------------------------------------------------------------------------------
# Amazon


def test_scientific_counts_and_records(real):
    dataset = real("amazon18_scientific")
    assert len(dataset.items) == 4_385
    assert len(users(dataset)) == 8_442
    assert split_counts(dataset) == {"train": 42_503, "valid": 8_442}
    items = {i.id: i for i in dataset.items}
    assert items["125"] == ItemRecord(
        id="125",
        title="Gorilla Original Gorilla Glue, Waterproof Polyurethane Glue, 8 ounce Bottle, Brown",
        brand="Gorilla",
        categories=("Industrial & Scientific", "Tapes, Adhesives & Sealants Urethane Adhesives"),
        asin="B0000223UV",
    )
    assert sum(not i.categories for i in dataset.items) == 134
    assert all(i.title for i in dataset.items)
    user0 = [(r.item, r.split, r.position) for r in dataset.interactions if r.user == "0"]
    assert user0 == [(str(p), "train", p) for p in range(12)] + [("12", "valid", 12)]
    assert {r.item for r in dataset.interactions} <= set(items)


def test_scientific_train_inter_rows_are_prefixes_of_the_loaded_sequences(data_dir, real):
    """Cross-check with Scientific.train.inter for users whose history was not cut to 50 items."""
    sequences: dict[str, list[str]] = {}
    for record in real("amazon18_scientific").interactions:
        sequences.setdefault(record.user, []).append(record.item)
    table = read_table(DATASETS["amazon18_scientific"].path(data_dir) / "Scientific.train.inter")
    user, history, target = table.index("user_id", "item_id_list", "item_id")
    checked = 0
    for row in table.rows:
        sequence = sequences[row[user]]
        if len(sequence) <= 50:
            prefix = [*row[history].split(), row[target]]
            assert sequence[: len(prefix)] == prefix
            checked += 1
    assert checked > 30_000


def test_games_counts_and_records(real):
    dataset = real("amazon18_games")
    assert len(dataset.items) == 16_859
    assert len(users(dataset)) == 50_546
    assert len(dataset.interactions) == 440_264
    assert split_counts(dataset) == {"train": 339_172, "valid": 50_546, "test": 50_546}
    assert dataset.items[11] == ItemRecord(id="11", title="Phantasy Star Online, Episode I & II")
    assert not any("&amp;" in (i.title or "") for i in dataset.items)
    user0 = [(r.item, r.split) for r in dataset.interactions if r.user == "0"]
    assert user0[-2:] == [("13", "valid"), ("14", "test")]
    assert len(user0) == 15


def test_office_counts_and_records(real):
    dataset = real("amazon14_office")
    items = {i.id: i for i in dataset.items}
    assert len(dataset.items) == 2_420
    assert set(items) == {str(i) for i in range(1, 2_421)}  # 1-based
    assert len(users(dataset)) == 4_905
    assert split_counts(dataset) == {"train": 43_448, "dev": 4_905, "test": 4_905}
    assert all(r.timestamp for r in dataset.interactions)
    assert items["1"] == ItemRecord(
        id="1",
        title="HP 78 Tri-Color Printer Cartridge (C6578DN) Laser Printer Toner HP",
        asin="B0000AG93P",
        brand_id="2",
        category_ids=("6",),
    )
    assert items["13"].brand_id is None and items["13"].category_ids == ()  # HP, brand 0 = unknown
    assert sum(i.brand_id is None for i in dataset.items) == 481
    assert Counter(link.relation for link in dataset.item_links) == {
        "complement": 38_071,
        "substitute": 18_345,
    }
    assert dataset.item_links[0] == ItemLinkRecord("170", "complement", "451")
    assert {r.item for r in dataset.interactions} <= set(items)
    assert {link.head for link in dataset.item_links} | {link.tail for link in dataset.item_links} <= set(
        items
    )
    first = InteractionRecord(user="1", item="1", split="train", timestamp=970185600)
    assert dataset.interactions[0] == first


def test_product_text_corpus(real):
    dataset = real("amazon18_product_text")
    assert len(dataset.documents) == len(dataset.items) == 3_459 + 3_686
    ids = [d.id for d in dataset.documents]
    assert len(set(ids)) == len(ids)
    assert Counter(i.split(":")[0] for i in ids) == {"office": 3_459, "scientific": 3_686}
    assert [i.id for i in dataset.items] == ids
    assert all(d.item == d.id for d in dataset.documents)
    tag = re.compile(r"</?[A-Za-z][\w:-]*(\s[^<>]*)?/?>|&[a-z]+;|&#\d+;|font-family")
    assert not [d.id for d in dataset.documents if tag.search(d.text) or tag.search(d.title)]
    documents = {d.id: d for d in dataset.documents}
    assert (
        documents["office:18"].title
        == "LINC Metallic Glitter Gel Pens, Sparkle Shine \u2013 Pack of 10 Assorted Colors"
    )
    assert documents["office:0"].text.endswith("Colors: Black, tri-color.")  # the inline CSS comment is gone
    assert documents["scientific:2406"].text.startswith("THIS SET INCLUDES: 1 Pcs IRIS SCISSORS")
    empty = [d.id for d in dataset.documents if not d.text]
    assert empty and all(i.description is None for i in dataset.items if i.id in set(empty))


def test_movielens_counts_and_records(real):
    dataset = real("ml_latest_small")
    items = {i.id: i for i in dataset.items}
    assert len(dataset.items) == 9_125
    assert len(dataset.interactions) == 100_004
    assert len(users(dataset)) == 671
    assert items["11"] == ItemRecord(
        id="11", title="American President, The (1995)", categories=("Comedy", "Drama", "Romance")
    )
    assert sum(not i.categories for i in dataset.items) == 18  # "(no genres listed)"
    assert dataset.interactions[0] == InteractionRecord(
        user="1", item="31", split="train", rating=2.5, timestamp=1260759144
    )
    assert not any("\r" in (i.title or "") or any("\r" in g for g in i.categories) for i in dataset.items)


def test_lastfm_counts_and_records(real):
    dataset = real("lastfm_kgcn")
    assert len(dataset.entities) == 9_366
    assert len(dataset.relations) == 60
    assert len(dataset.triples["train"]) == 15_518
    assert len(dataset.items) == len(dataset.item_entities) == 3_846
    assert len(dataset.interactions) == 21_173  # of 92,834 HetRec rows: KG-linked artists only
    assert len(users(dataset)) == 1_872
    assert dataset.item_entities["2"] == "0"
    assert dataset.triples["train"][0] == TripleRecord("2086", "music.artist.origin", "3846")
    assert RelationRecord("music.artist.origin", "music artist origin") in dataset.relations
    entity_ids = {e.id for e in dataset.entities}
    assert set(dataset.item_entities.values()) <= entity_ids
    assert {r.item for r in dataset.interactions} <= set(dataset.item_entities)
    assert all(r.rating and r.rating > 0 for r in dataset.interactions)
    assert not any("\r" in e.id for e in dataset.entities)
