"""The title normaliser on real quirky Amazon titles (copied as literals from Scientific.text,
Office.text and the 2018 product corpus), the LLM rewrite against the TEST DOUBLE, storage on
Item nodes in the real embedded graph, item_text, and BERT-whitening."""

from __future__ import annotations

import numpy as np
import pytest

from kg_builder.datasets.records import ItemRecord
from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.graphdb import GraphNode, NodeWrite
from kg_builder.products.titles import (
    LLM_METHOD,
    OFFLINE_METHOD,
    LLMTitleRewriter,
    NormalisedTitle,
    TitleNormaliser,
    Whitening,
    clean_title,
    item_text,
    learn_trailing_phrases,
    write_normalised_titles,
)

# --- offline normaliser on real titles -----------------------------------------------------------


def test_brand_written_twice_and_model_number_become_one_brand_and_an_attribute():
    # Scientific B00002NC3K; the dataset's brand is "Rubbermaid Commercial Products"
    r = TitleNormaliser().run(
        "Rubbermaid Commercial Products FG263100GRAY Rubbermaid Commercial Round Brute Container Lid, Gray, 32G",
        brand="Rubbermaid Commercial Products")
    assert r.text.lower().count("rubbermaid") == 1
    # the second, shorter spelling of the brand stays as the one mention (nothing is prepended)
    assert r.text.startswith("Rubbermaid Commercial Round Brute Container Lid")
    assert r.attributes["model"] == "FG263100GRAY"
    assert r.attributes["colour"] == "gray"
    assert r.product_type == "Container Lid"
    assert r.brand == "Rubbermaid Commercial Products"
    assert (r.source.method, r.source.version) == (OFFLINE_METHOD, "1")


def test_sizes_grit_and_model_numbers_are_extracted():
    # Scientific B0000223SI
    r = TitleNormaliser().run(
        "PORTER-CABLE 740000801 4 1/2-Inch x 10yd 80 Grit Adhesive-Backed Sanding Roll", brand="PORTER-CABLE")
    assert r.attributes["model"] == "740000801"
    assert "4 1/2-Inch x 10yd" in r.attributes["size"] and "80 Grit" in r.attributes["size"]
    assert r.product_type == "Sanding Roll"
    assert r.text.startswith("Porter-Cable Adhesive-Backed Sanding Roll")
    assert "740000801" not in r.text


def test_pack_counts_in_their_many_spellings():
    cases = {
        "B&C Eagle 9018 3/4-Inch Length x 1/4-Inch Narrow Crown x 18 Gauge Galvanized Finish Staples (5,000 per box)":
            "5000",
        "Master Magnetics Magnetic Hook White Enamel Paint, 1 Diameter, 1.5 Total Height, 9 Pounds of Pull "
        "(Pack of 8), MHHH9X8": "8",
        "Kamo 5PCS 3D Printer 0.4mm Extruder Brass Nozzle Print Head for MK8 1.75mm ABS PLA Printer": "5",
        "Kreg SML-C150-100 Pocket Screws 1-1/2-Inch, 8 Coarse, Washer-Head, 100-Count": "100",
        "Adenna DLG675 Dark Light 9 mil Nitrile Powder Free Exam Gloves (Black, Medium) Box of 100": "100",
    }
    for title, count in cases.items():
        assert TitleNormaliser().run(title).attributes.get("count") == count, title


def test_short_codes_that_name_the_product_stay_in_the_text():
    r = TitleNormaliser().run(
        "HDE RJ45 RJ11 RJ12 Cat5 Cat6 UTP Network Cable Tester for LAN Phone Wire Test Tool", brand="HDE")
    assert "RJ45" in r.text and "Cat6" in r.text
    assert "model" not in r.attributes


def test_html_entities_tags_and_mojibake_are_cleaned():
    # product corpus titles (raw HTML entities) and Office.text (mojibake)
    r = TitleNormaliser().run("Gorilla Crystal Clear Duct Tape, 1.88&rdquo; x 9 yd, Clear, (Pack of 1)", brand="Gorilla")
    assert "&" not in r.text and "rdquo" not in r.text
    assert r.attributes["count"] == "1"
    assert clean_title("Eye-Vac EVPRO Tuxedo Black Touchless Stationary Vacuum &ndash; 1400 Watts") == \
        "Eye-Vac EVPRO Tuxedo Black Touchless Stationary Vacuum, 1400 Watts"
    assert clean_title("ScotchÂ® Removable DoubleSided Tape <b>3/4 inch</b>") == "Scotch Removable DoubleSided Tape 3/4 inch"
    assert clean_title("Jumbo Deluxe Metal Bookend (9) Bookends Universal&amp;reg;") == \
        "Jumbo Deluxe Metal Bookend (9) Bookends Universal"


def test_all_caps_titles_become_title_case_but_short_acronyms_stay():
    # Scientific: "5 PIECES SCISSORS FORCEPS HEMOSTATS NEEDLE HOLDERS DDP INSTRUMENTS", brand DDP
    r = TitleNormaliser().run("5 PIECES SCISSORS FORCEPS HEMOSTATS NEEDLE HOLDERS DDP INSTRUMENTS", brand="DDP")
    assert r.text == "DDP Scissors Forceps Hemostats Needle Holders Instruments"
    assert r.attributes["count"] == "5"
    r = TitleNormaliser().run("10-PC 5 S HOOK WITH PVC COATING", brand="Good House")
    assert "PVC" in r.text and "Coating" in r.text


OFFICE_CLIPS = [  # Office.text of two items of one i_category: title + leaf category + brand, no separators
    "Officemate Micro Size Binder Clips, Black, 100 per Tub (31030) Clips",
    "Clover Wonder Clips, 50 Per Pack Clips Clover",
]
OFFICE_INK = [
    "Canon PG-240XXL Office Products FINE Cartridge Ink Inkjet Printer Ink Canon",
    "HP 74XL Ink Cartridge- Black Inkjet Printer Ink HP",
    "HP 60 Black / Color Original Ink Cartridge Combo Pack Inkjet Printer Ink HP",
]


def test_office_trailing_category_and_brand_are_learnt_and_cut():
    phrases = learn_trailing_phrases({"clips": OFFICE_CLIPS, "ink": OFFICE_INK})
    assert phrases == {"clips": "Clips", "ink": "Inkjet Printer Ink"}
    normaliser = TitleNormaliser(trailing_phrases=phrases.values())
    r = normaliser.run(OFFICE_CLIPS[1])
    assert (r.text, r.brand, r.attributes["category"], r.attributes["count"]) == \
        ("Clover Wonder Clips", "Clover", "Clips", "50")
    r = normaliser.run(OFFICE_INK[1])
    assert r.brand == "HP" and r.attributes["category"] == "Inkjet Printer Ink"
    assert r.text == "HP 74XL Ink Cartridge, black"


def test_without_learnt_phrases_a_trailing_repeat_of_the_brand_is_cut():
    r = TitleNormaliser().run(
        "Paper Mate Quick Flip 0.7MM Mechanical Pencil Starter Set, 4 Mechanical Pencils (1808783) "
        "Mechanical Pencils Paper Mate")
    assert r.brand == "Paper Mate"
    assert r.text.lower().count("paper mate") == 1 and not r.text.endswith("Paper Mate")
    assert r.attributes["model"] == "1808783"


def test_bad_titles_are_refused_with_the_field_named():
    for bad in ("", "   ", None, "x" * 2001):
        with pytest.raises(InvalidInputError, match="^title:"):
            TitleNormaliser().run(bad)  # type: ignore[arg-type]


def test_every_real_scientific_title_normalises(data_dir):
    from kg_builder.datasets import load_dataset

    records = load_dataset("amazon18_scientific", data_dir)
    normaliser = TitleNormaliser()
    results = [normaliser.run(item.title, brand=item.brand) for item in records.items if item.title]
    assert len(results) == 4385
    assert all(r.text.strip() for r in results)
    typed = sum(r.product_type is not None for r in results)
    assert typed / len(results) > 0.95
    # the brand, when known, is written once
    twice = [r for r in results if r.brand and r.text.lower().count(r.brand.lower()) > 1]
    assert len(twice) / len(results) < 0.02, [r.text for r in twice[:5]]


# --- LLM rewrite against the TEST DOUBLE ----------------------------------------------------------
TITLE = "Rubbermaid Commercial Products FG263100GRAY Rubbermaid Commercial Round Brute Container Lid, Gray, 32G"
BRAND = "Rubbermaid Commercial Products"


def test_llm_rewrite_is_validated_and_carries_its_prompt_and_model(double, make_llm):
    double.reply({"title": "Rubbermaid Commercial Products Round Brute container lid, gray, for 32-gallon cans",
                  "brand": BRAND, "product_type": "container lid",
                  "attributes": {"model": "FG263100GRAY", "colour": "gray"}})
    r = LLMTitleRewriter(make_llm()).run(TITLE, brand=BRAND, item_id="amazon:B00002NC3K")
    assert r.text.startswith("Rubbermaid Commercial Products Round Brute container lid")
    assert (r.source.method, r.source.version, r.source.note) == (LLM_METHOD, "title_rewrite@v1", None)
    assert r.source.model == double.model
    assert r.attributes["model"] == "FG263100GRAY" and r.item_id == "amazon:B00002NC3K"
    request = double.requests[0]
    assert request.response_format["json_schema"]["schema"]["required"] == ["title"]
    assert "FG263100GRAY" in request.messages[1]["content"]


def test_invalid_answers_fall_back_to_the_offline_result_with_a_note(double, make_llm):
    offline = TitleNormaliser().run(TITLE, brand=BRAND)
    double.malformed().malformed()  # the client re-asks once, then gives up
    r = LLMTitleRewriter(make_llm()).run(TITLE, brand=BRAND)
    assert r.text == offline.text and r.source.method == OFFLINE_METHOD
    assert r.source.note.startswith("llm fallback: invalid LLM answer")


def test_answer_that_drops_the_brand_or_rambles_falls_back(double, make_llm):
    double.reply({"title": "Round container lid, gray"})
    r = LLMTitleRewriter(make_llm()).run(TITLE, brand=BRAND)
    assert r.source.method == OFFLINE_METHOD and "drops the brand" in r.source.note
    double.reply({"title": f"{BRAND} lid " + "very " * 200})
    r = LLMTitleRewriter(make_llm()).run(TITLE, brand=BRAND)
    assert r.source.method == OFFLINE_METHOD and "characters" in r.source.note


def test_server_failures_fall_back_instead_of_failing_the_batch(double, make_llm):
    double.status(500).status(500).status(500)  # max_retries=2: three attempts
    double.reply({"title": "PORTER-CABLE adhesive-backed sanding roll, 80 grit", "brand": "PORTER-CABLE"})
    rewriter = LLMTitleRewriter(make_llm(max_concurrency=1))
    first, second = rewriter.run_many([
        ("a", TITLE, BRAND),
        ("b", "PORTER-CABLE 740000801 4 1/2-Inch x 10yd 80 Grit Adhesive-Backed Sanding Roll", "PORTER-CABLE"),
    ])
    assert first.source.method == OFFLINE_METHOD and "LLM call failed" in first.source.note
    assert second.source.method == LLM_METHOD and second.item_id == "b"


# --- storage on Item nodes ------------------------------------------------------------------------


@pytest.mark.integration
def test_normalised_titles_are_stored_beside_the_raw_title(store):
    raw = "PORTER-CABLE 740000801 4 1/2-Inch x 10yd 80 Grit Adhesive-Backed Sanding Roll"
    store.upsert_nodes([NodeWrite(label="Item", id="amazon:B0000223SI", name=raw,
                                  props={"domain": "amazon18_scientific"})])
    results = [TitleNormaliser().run(raw, brand="PORTER-CABLE", item_id="amazon:B0000223SI"),
               TitleNormaliser().run("Gorilla Glue, 8 ounce Bottle", item_id="amazon:NOT-IMPORTED")]
    report = write_normalised_titles(store, results, job_id="job-1")
    assert report.written == 1 and report.missing == ["amazon:NOT-IMPORTED"]
    node = store.get_node("amazon:B0000223SI", "Item")
    props = node.properties
    assert props["name"] == raw  # the raw title is kept
    assert props["title_normalised"] == results[0].text
    assert props["title_brand"] == "Porter-Cable" and props["title_type"] == "Sanding Roll"
    assert props["title_source"] == "offline-normaliser@1"
    assert "model=740000801" in props["title_attributes"]
    assert "titles:offline-normaliser@1" in props["sources"]
    assert store.get_node("amazon:NOT-IMPORTED") is None  # a missing item is reported, never created
    assert item_text(node) == results[0].text
    assert item_text(node, normalised=False) == raw


def test_item_text_prefers_the_normalised_title_when_present():
    record = ItemRecord(id="17", title="DEWALT DW4524 Grinding Wheel")
    assert item_text(record) == "DEWALT DW4524 Grinding Wheel"
    node = GraphNode(label="Item", id="amazon:X", properties={"name": "RAW", "title_normalised": "Clean"})
    assert item_text(node) == "Clean" and item_text(node, normalised=False) == "RAW"
    assert item_text({"name": "RAW"}) == "RAW"
    assert item_text({}) == ""
    result = TitleNormaliser().run("DEWALT DW4524 Grinding Wheel", brand="DEWALT")
    assert isinstance(result, NormalisedTitle) and item_text(result) == result.text != result.raw


# --- BERT-whitening -------------------------------------------------------------------------------


def test_whitening_decorrelates_reduces_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    E = rng.normal(size=(200, 16)) @ rng.normal(size=(16, 16)) + 3.0  # correlated, off-centre
    w = Whitening(k=8).fit(E)
    Y = (E - w.mu) @ w.W
    assert Y.shape == (200, 8)
    np.testing.assert_allclose(np.cov(Y.T), np.eye(8), atol=1e-3)  # whitened: identity covariance
    out = w.transform(E)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    w.save(tmp_path / "model")
    loaded = Whitening.load(tmp_path / "model")
    assert loaded.k == 8
    np.testing.assert_allclose(loaded.transform(E), out, rtol=1e-5, atol=1e-6)


def test_whitening_refuses_bad_input(tmp_path):
    with pytest.raises(InvalidInputError, match="^k:"):
        Whitening(k=0)
    with pytest.raises(InvalidInputError, match="^k:"):
        Whitening(k=32).fit(np.ones((10, 16)))
    with pytest.raises(InvalidInputError, match="^embeddings:"):
        Whitening(k=2).fit(np.ones((1, 16)))
    with pytest.raises(KGForgeError, match="not fitted"):
        Whitening(k=2).transform(np.ones((3, 16)))
    with pytest.raises(KGForgeError, match="no whitening.npz"):
        Whitening.load(tmp_path)
    with pytest.raises(InvalidInputError, match="^embeddings:"):
        Whitening(k=2).fit(np.random.default_rng(0).normal(size=(10, 4))).transform(np.ones((3, 5)))
