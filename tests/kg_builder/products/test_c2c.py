"""C2C library: labels on a hand-built dataset, the LLM method against the test double (name mapping,
unmapped names), and COMPLEMENTARY_TO writes against the real embedded graph database."""

from __future__ import annotations

import json

import pytest

from kg_builder.datasets.records import Dataset, InteractionRecord, ItemRecord
from kg_builder.errors import InvalidInputError
from kg_builder.graphdb import NodeWrite
from kg_builder.ingest import DatasetImporter
from kg_builder.products.c2c import (
    C2CResult,
    CategoryMapper,
    CoPurchase,
    LLMComplements,
    category_catalogue,
    label_categories,
    write_category_labels,
    write_complementary,
)

TITLES = {
    "1": ["Brother Laser Printer HL-2240", "HP LaserJet Pro Laser Printer", "Canon Laser Printer Monochrome"],
    "2": ["HP 78 Toner Cartridge Black", "Brother TN-450 Toner Cartridge", "Canon 125 Toner Cartridge"],
    "3": ["Hammermill Copy Paper 500 Sheets", "HP Printer Paper Letter 500 Sheets", "Copy Paper Bright White Ream"],
    "4": ["Pilot G2 Gel Pens Black", "Uni-ball Gel Pens Blue", "Zebra Gel Pens Assorted"],
}


def tiny_dataset(name: str = "tiny_shop") -> Dataset:
    """Four id-only categories, three items each; users buy printers with toner and paper, pens alone."""
    items, n = [], 0
    for category, titles in TITLES.items():
        for title in titles:
            n += 1
            items.append(ItemRecord(id=str(n), title=title, category_ids=(category,)))
    baskets = {"u1": ["1", "4", "7"], "u2": ["2", "5"], "u3": ["3", "6", "8"], "u4": ["10", "11"],
               "u5": ["1", "5"], "u6": ["12", "9"]}
    interactions = [InteractionRecord(user=u, item=i, split="train", timestamp=t)
                    for u, basket in baskets.items() for t, i in enumerate(basket)]
    return Dataset(name=name, kind="rec", items=items, interactions=interactions)


def key(category: str, name: str = "tiny_shop") -> str:
    return f"{name}:category:{category}"


# --- labels ---------------------------------------------------------------------------------------
def test_labels_are_the_most_characteristic_title_terms_with_provenance():
    labels = label_categories(tiny_dataset())
    assert set(labels) == {key(c) for c in TITLES}
    printer, toner, paper, pens = (labels[key(c)] for c in "1234")
    assert "laser printer" in printer.terms
    assert "toner cartridge" in toner.terms
    assert "copy paper" in paper.terms or "paper" in paper.terms
    assert "gel pens" in pens.terms
    # Brands spread over several categories (HP, Canon, Brother) are not characteristic of one.
    assert not {"hp", "canon", "brother"} & set(printer.terms)
    assert all(lab.label_source == "title-terms" and lab.method == "title-terms@v1" for lab in labels.values())
    assert printer.label == ", ".join(printer.terms) and 2 <= len(printer.terms) <= 3
    assert printer.items == 3


def test_named_categories_keep_their_names():
    dataset = Dataset(name="named", kind="rec", items=[
        ItemRecord(id="1", title="Duct tape silver", categories=("Industrial", "Tapes")),
        ItemRecord(id="2", title="Heat shrink tubing kit", categories=("Industrial", "Tubing"))])
    labels = label_categories(dataset)
    assert {lab.label for lab in labels.values()} == {"Tapes", "Tubing"}
    assert {lab.label_source for lab in labels.values()} == {"name"}


def test_copurchase_counts_users_who_bought_both_categories():
    catalogue = category_catalogue(tiny_dataset())
    train = [(i.user, i.item) for i in tiny_dataset().interactions]
    method = CoPurchase(catalogue, train, norm="count")
    proposal = method.run(key("1"), k=3)
    assert proposal.targets[:2] == [key("2"), key("3")]  # 4 users bought printer + toner, 2 printer + paper
    assert key("1") not in proposal.targets
    toner = proposal.results[0]
    assert toner.sources == ("co-purchase",) and 0.0 <= toner.confidence <= 1.0
    assert "users interacted with both" in toner.evidence[0]
    with pytest.raises(InvalidInputError) as e:
        method.run("tiny_shop:category:99")
    assert e.value.field == "source"


# --- the LLM method against the TEST DOUBLE ------------------------------------------------------------
@pytest.fixture(scope="module")
def encoder():
    from kg_builder.models.encoder import TextEncoder

    return TextEncoder()


def test_llm_names_are_mapped_and_a_name_that_maps_nowhere_is_reported(double, make_llm, encoder):
    catalogue = category_catalogue(tiny_dataset())
    double.reply({"categories": [
        {"name": "toner cartridges", "reason": "a laser printer needs toner"},
        {"name": "printer paper", "reason": "printing needs paper"},
        {"name": "garden hoses", "reason": "no reason at all"},
        {"name": "laser printers", "reason": "the source itself"},
    ]})
    method = LLMComplements(make_llm(), catalogue, CategoryMapper(catalogue, encoder))
    proposal = method.run(key("1"))

    assert proposal.targets == [key("2"), key("3")]
    assert all(r.sources == ("llm",) and 0.0 < r.confidence <= 1.0 for r in proposal.results)
    assert "a laser printer needs toner" in proposal.results[0].evidence[0]
    unmapped = {u.name: u for u in proposal.unmapped}
    assert set(unmapped) == {"garden hoses", "laser printers"}
    assert "threshold" in unmapped["garden hoses"].reason
    assert unmapped["laser printers"].reason == "maps to the source category"
    # The prompt and the schema went to the server.
    request = double.requests[-1]
    assert "laser printer" in request.messages[-1]["content"].lower()
    assert request.response_format is not None
    assert "categories" in json.dumps(request.response_format)


# --- writing against the real embedded database --------------------------------------------------------
def result(target: str, confidence: float = 0.8) -> C2CResult:
    return C2CResult(target=target, name=target, score=confidence, confidence=confidence,
                     sources=("co-purchase",), evidence=("3 users interacted with both",))


@pytest.mark.integration
def test_write_complementary_writes_only_to_existing_categories(store):
    DatasetImporter(store).run(tiny_dataset())
    skipped: list[str] = []
    written = write_complementary(
        store, key("1"), [result(key("2")), result(key("3"), 0.6), result(key("99")), result(key("1"))],
        job_id="job-1", skipped=skipped)

    assert written == 2
    assert skipped == [key("99"), key("1")]
    rows = store._query("MATCH (a:Category)-[r:COMPLEMENTARY_TO]->(b:Category) "
                        "RETURN a.id AS a, b.id AS b, r.confidence AS c, r.sources AS s, r.evidence AS e, "
                        "r.job_id AS j, r.relation AS rel ORDER BY b")
    assert [(r["a"], r["b"], r["c"]) for r in rows] == [(key("1"), key("2"), 0.8), (key("1"), key("3"), 0.6)]
    assert all(r["s"] == ["co-purchase"] and r["e"] == ["3 users interacted with both"] and r["j"] == "job-1"
               and r["rel"] == "complementary to" for r in rows)
    assert store.get_node(key("99"), "Category") is None  # never created


@pytest.mark.integration
def test_write_complementary_refuses_a_missing_source_and_another_domains_target(store):
    DatasetImporter(store).run(tiny_dataset())
    DatasetImporter(store).run(tiny_dataset("other_shop"))
    with pytest.raises(InvalidInputError) as e:
        write_complementary(store, key("99"), [result(key("2"))], job_id=None)
    assert e.value.field == "source"
    skipped: list[str] = []
    assert write_complementary(store, key("1"), [result(key("2", "other_shop"))], job_id=None, skipped=skipped) == 0
    assert skipped == [key("2", "other_shop")]
    assert store.counts().edges.get("COMPLEMENTARY_TO", 0) == 0


@pytest.mark.integration
def test_labels_are_stored_on_existing_category_nodes_with_provenance(store):
    dataset = tiny_dataset()
    DatasetImporter(store).run(dataset)
    labels = label_categories(dataset)
    extra = labels[key("1")].__class__(key=key("99"), label="ghost", label_source="title-terms")
    assert write_category_labels(store, [*labels.values(), extra], job_id="job-1") == 4
    node = store.get_node(key("2"), "Category").properties
    assert node["name"] == labels[key("2")].label
    assert node["label_source"] == "title-terms" and node["label_method"] == "title-terms@v1"
    assert node["label_terms"] == list(labels[key("2")].terms)
    assert node["domain"] == "tiny_shop" and node["native_id"] == "2"  # import properties survive
    assert set(node["sources"]) == {"dataset:tiny_shop", "c2c:title-terms@v1"}
    assert store.get_node(key("99"), "Category") is None
    store.upsert_nodes([NodeWrite(label="Category", id=key("2"), props={"depth": 0})])
    assert store.get_node(key("2"), "Category").properties["name"] == labels[key("2")].label
