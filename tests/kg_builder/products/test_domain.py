"""The product graph as a KG domain: keys, the KG view of an Amazon set, its import, and a job's
label-aware reads of it (real embedded database)."""

from __future__ import annotations

from collections import Counter

import product_shop
import pytest

from kg_builder.graphdb import schema
from kg_builder.ingest import import_dataset
from kg_builder.pipeline.snapshot import GraphSnapshot
from kg_builder.products.domain import (
    PRODUCT_RELATIONS,
    domain_labels,
    is_product_domain,
    load_kg_view,
    office_brand_name,
    product_kg,
    split_of,
)

DOMAIN = product_shop.DOMAIN
tiny_office = product_shop.tiny_office


def test_keys_round_trip_and_labels():
    assert schema.label_for_key("amazon:B001") == schema.ITEM
    assert schema.label_for_key("amazon14_office:category:6") == schema.CATEGORY
    assert schema.label_for_key("amazon14_office:brand:2") == schema.BRAND
    assert schema.label_for_key("category:office/paper") == schema.CATEGORY
    assert schema.label_for_key("umls:virus") == schema.ENTITY
    # a node a job created, named "category" with a type, is not a category
    assert schema.label_for_key("umls:category:organism") == schema.ENTITY
    for domain, key in [("umls", "umls:virus"), (DOMAIN, "amazon:B001"), (DOMAIN, "amazon14_office:category:6"),
                        (DOMAIN, "brand:3m"), ("fb15k237", "fb15k237:/m/027rn")]:
        assert schema.graph_key(domain, schema.native_key(domain, key)) == key
    # Office's category 6 and a named category "6" are two nodes
    assert schema.native_key(DOMAIN, "amazon14_office:category:6") != schema.native_key(DOMAIN, "category:6")
    assert schema.native_key("umls", "wn18rr:00001") is None


def test_product_domains_read_catalogue_labels():
    assert is_product_domain("amazon14_office") and is_product_domain("amazon18_scientific")
    assert not is_product_domain("umls") and not is_product_domain("ml_latest_small")
    assert domain_labels("umls") == (schema.ENTITY,)
    assert set(domain_labels("amazon14_office")) == {schema.ITEM, schema.BRAND, schema.CATEGORY, schema.ENTITY}


def test_office_brand_names_from_real_title_runs():
    # Real Office.text rows: the brand opens and closes the text; single-item brands fall back to the
    # closing words, with company words kept together.
    assert office_brand_name(["Texas Instruments TI-1795 SV Standard Function Calculator Basic Texas Instruments",
                              "Texas Instruments TI-83 Graphing Calculator Graphing Texas Instruments"]) \
        == "Texas Instruments"
    assert office_brand_name(["HP 12C Financial Calculator Scientific HP",
                              "Tri-Color Printer Cartridge (C6578DN) Laser Printer Toner HP"]) == "HP"
    assert office_brand_name(["Late Registration Office & School Supplies Umgd/Def Jam Products"]) == "Jam Products"
    assert office_brand_name([]) is None


def test_view_has_catalogue_relations_names_and_stable_splits():
    view = product_kg(tiny_office())
    entities = {e.id: e for e in view.entities}
    assert entities["amazon:B001"].name.startswith("HP 74")
    assert entities["amazon14_office:brand:2"].name == "HP"
    assert entities["amazon14_office:brand:7"].name == "Epson"
    assert "amazon14_office:category:6" in entities and entities["amazon14_office:category:6"].name
    triples = {(t.head, t.relation, t.tail) for t in view.all_triples()}
    assert ("amazon:B001", "has brand", "amazon14_office:brand:2") in triples
    assert ("amazon:B001", "in category", "amazon14_office:category:6") in triples
    assert ("amazon:B002", "complementary to", "amazon:B001") in triples
    assert ("amazon:B001", "substitute for", "amazon:B003") in triples
    # derived: the printer is used with the ink category; HP sells in ink and printers
    assert ("amazon:B002", "used with", "amazon14_office:category:6") in triples
    assert ("amazon14_office:brand:2", "sells in", "amazon14_office:category:11") in triples
    assert {r.id for r in view.relations} <= set(PRODUCT_RELATIONS)
    for split, rows in view.triples.items():
        assert all(split_of(t.head, t.relation, t.tail) == split for t in rows)
    assert product_kg(tiny_office()).triples == view.triples  # deterministic


def test_import_writes_names_derived_edges_and_pool_and_a_job_reads_them(store):
    report = import_dataset(store, tiny_office())
    assert report.nodes["Category"] == 3 and report.nodes["Brand"] == 2  # naming them does not count them twice
    assert report.edges["USED_WITH"] > 0 and report.edges["SELLS_IN"] > 0
    brand = store.get_node("amazon14_office:brand:2", label="Brand")
    assert brand.properties["name"] == "HP" and brand.properties["name_source"].startswith("office-title-brand")
    category = store.get_node("amazon14_office:category:6", label="Category")
    assert category.properties["name"] and category.properties["name_source"]
    pool = {r.name: r.description for r in store.domain_relation_pool(DOMAIN)}
    assert {"has brand", "in category", "complementary to", "used with", "sells in"} <= set(pool)
    assert "brand" in pool["has brand"]

    snapshot = GraphSnapshot.from_store(store, DOMAIN)
    assert snapshot.entities["amazon:B002"].name.startswith("HP Photosmart")
    out = {(e.relation, e.tail) for e in snapshot.out_edges("amazon:B002")}
    assert ("complementary to", "amazon:B001") in out and ("has brand", "amazon14_office:brand:2") in out
    assert ("used with", "amazon14_office:category:6") in out
    assert not any(e.relation == "interacted" for e in snapshot.in_edges("amazon:B001"))  # users are not knowledge
    assert snapshot.relation_range("sells in")["amazon14_office:category:11"] == 2  # HP and Epson
    assert [e.id for e in snapshot.find("HP")] == ["amazon14_office:brand:2"]
    assert snapshot.native("amazon14_office:category:6") == "amazon14_office:category:6"
    assert snapshot.native("umls:virus") is None


def test_real_office_and_scientific_views(data_dir):
    office = load_kg_view("amazon14_office", data_dir)
    relations = Counter(t.relation for t in office.all_triples())
    assert relations["complementary to"] == 38_071 and relations["substitute for"] == 18_345
    assert relations["has brand"] > 1_500 and relations["in category"] > 2_000 and relations["used with"] > 0
    names = {e.id: e.name for e in office.entities}
    assert names["amazon14_office:brand:2"] == "HP"
    assert sum(1 for e in office.entities if schema.label_for_key(e.id) == schema.CATEGORY) == 39
    assert set(office.triples) == {"train", "dev", "test"}
    shares = {s: len(rows) / len(office.all_triples()) for s, rows in office.triples.items()}
    assert shares["train"] == pytest.approx(0.8, abs=0.02)
    scientific = load_kg_view("amazon18_scientific", data_dir)
    assert {r.id for r in scientific.relations} >= {"has brand", "in category", "subcategory of", "sells in"}


def test_a_product_job_never_writes_a_target_outside_the_catalogue():
    from kg_builder.pipeline.pipeline import EntityRun, ScoredTriple, catalogue_targets_only

    def candidate(target_id, kept):
        return ScoredTriple.model_construct(target_id=target_id, target_name="x", kept=kept)

    run = EntityRun.model_construct(candidates=[candidate("amazon:B001", True), candidate(None, True),
                                                candidate(None, False)])
    (kept_run,), dropped = catalogue_targets_only([run])
    assert dropped == 1
    assert [(c.target_id, c.kept) for c in kept_run.candidates] == [("amazon:B001", True), (None, False)]
    assert len(run.candidates) == 3  # the caller's run is untouched
