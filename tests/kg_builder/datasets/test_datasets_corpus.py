"""Amazon 2018 product-text corpus loader on tiny hand-made JSON files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kg_builder.datasets import DocumentRecord, ItemRecord, load_dataset
from kg_builder.errors import DatasetError

OFFICE = {
    "0": {
        "title": "HP 74 &amp; 75 Ink",
        "description": str(["HP 74 ink.", " <!-- .headerM {color:#000000;} --> ", ""]),
        "brand": "HP",
        "categories": "",
    },
    "1": {"title": "Label Maker", "description": "", "brand": "", "categories": "Office Products > Labels"},
    "10": {
        "title": "Marker",
        "description": "['Marks-A-Lot<sup></sup> Jumbo.<br />Ink: <100mA. It's low-odor']",
        "brand": "Avery",
        "categories": "",
    },
    "2": {
        "title": "Pens",
        "description": "['<ulu>Gel pens &ndash; 10 colors</ulu>.', 'Second\\nparagraph']",
        "brand": "LINC",
        "categories": "",
    },
}
SCIENTIFIC = {
    "0": {
        "title": "Caliper",
        "description": "['<body>', 'THIS SET INCLUDES: 1 Pcs']",
        "brand": "DDP",
        "categories": "",
    }
}


def make_corpus(root: Path) -> Path:
    folder = root / "corpus" / "amazon18_product_text"
    folder.mkdir(parents=True)
    (folder / "Office_Products.item.json").write_text(json.dumps(OFFICE, indent=2), encoding="utf-8")
    (folder / "Industrial_and_Scientific.item.json").write_text(json.dumps(SCIENTIFIC), encoding="utf-8")
    return folder


@pytest.fixture
def corpus(tmp_path):
    make_corpus(tmp_path)
    return load_dataset("amazon18_product_text", tmp_path)


def test_ids_are_prefixed_unique_and_in_index_order(corpus):
    assert (corpus.name, corpus.kind) == ("amazon18_product_text", "corpus")
    assert [d.id for d in corpus.documents] == [
        "office:0",
        "office:1",
        "office:2",
        "office:10",
        "scientific:0",
    ]
    assert [i.id for i in corpus.items] == [d.id for d in corpus.documents]
    assert all(d.item == d.id for d in corpus.documents)


def test_html_css_and_entities_are_cleaned(corpus):
    docs = {d.id: d for d in corpus.documents}
    assert docs["office:0"] == DocumentRecord(
        id="office:0", title="HP 74 & 75 Ink", text="HP 74 ink.", brand="HP", item="office:0"
    )
    assert docs["office:2"].text == "Gel pens \u2013 10 colors . Second paragraph"
    assert docs["scientific:0"].text == "THIS SET INCLUDES: 1 Pcs"


def test_malformed_list_literal_keeps_its_text(corpus):
    # unescaped apostrophe: not a valid literal, the tolerant split keeps the words; "<100mA" is not a tag
    docs = {d.id: d for d in corpus.documents}
    assert docs["office:10"].text == "Marks-A-Lot Jumbo. Ink: <100mA. It's low-odor"


def test_missing_description_and_brand(corpus):
    docs = {d.id: d for d in corpus.documents}
    items = {i.id: i for i in corpus.items}
    assert docs["office:1"].text == ""
    assert docs["office:1"].brand is None
    assert items["office:1"] == ItemRecord(
        id="office:1",
        title="Label Maker",
        description=None,
        brand=None,
        categories=("Office Products", "Labels"),
    )
    assert docs["office:1"].categories == ("Office Products", "Labels")


def test_item_carries_the_cleaned_description(corpus):
    items = {i.id: i for i in corpus.items}
    assert items["office:0"].description == "HP 74 ink."
    assert items["office:0"].categories == ()


def test_missing_file_is_an_error(tmp_path):
    folder = make_corpus(tmp_path)
    (folder / "Industrial_and_Scientific.item.json").unlink()
    with pytest.raises(DatasetError, match=r"Industrial_and_Scientific\.item\.json"):
        load_dataset("amazon18_product_text", tmp_path)


def test_unexpected_json_shape_is_an_error(tmp_path):
    folder = make_corpus(tmp_path)
    (folder / "Office_Products.item.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DatasetError, match="expected a JSON object"):
        load_dataset("amazon18_product_text", tmp_path)
