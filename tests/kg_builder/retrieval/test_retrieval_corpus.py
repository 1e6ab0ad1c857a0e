"""Corpus: documents, dedupe by id, later additions, JSONL round trip, builders from datasets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kg_builder.datasets import Dataset, DocumentRecord, EntityRecord
from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.retrieval import Corpus, Document, corpus_from_dataset


def doc(doc_id: str, text: str = "some text", **fields) -> Document:
    return Document(id=doc_id, text=text, source="test", **fields)


def test_search_text_joins_title_and_text():
    document = doc("a", "A small infectious agent.", title="virus")
    assert document.search_text == "virus. A small infectious agent."
    assert doc("b", "", title="Stapler").search_text == "Stapler"


def test_document_needs_text_or_title():
    with pytest.raises(ValidationError, match="neither text nor title"):
        doc("empty", "  ")


def test_add_appends_new_ids_and_keeps_positions_on_replace():
    corpus = Corpus([doc("a"), doc("b")])
    update = corpus.add([doc("c"), doc("a", "new text for a"), doc("b")])
    assert corpus.ids == ["a", "b", "c"]
    assert update.added == [2] and update.replaced == [0] and update.unchanged == 1
    assert corpus.get("a").text == "new text for a"
    assert corpus.index_of("c") == 2 and "c" in corpus


def test_duplicate_ids_in_one_batch_keep_one_document():
    corpus = Corpus([doc("a", "first"), doc("a", "second")])
    assert len(corpus) == 1 and corpus.get("a").text == "second"


def test_unknown_id_says_so():
    with pytest.raises(InvalidInputError, match="no document 'zzz'"):
        Corpus([doc("a")]).index_of("zzz")


def test_save_load_round_trip(tmp_path):
    corpus = Corpus([doc("umls:doc:virus", "A virus replicates in cells.", title="virus", entity_id="virus"),
                     doc("office:12", "Blue ink, 0.7 mm — “quoted”.", title="Pen")])
    loaded = Corpus.load(corpus.save(tmp_path / "corpus"))
    assert loaded.ids == corpus.ids
    assert list(loaded) == list(corpus)


def test_load_missing_folder_explains(tmp_path):
    with pytest.raises(KGForgeError, match="no corpus"):
        Corpus.load(tmp_path)


def test_corpus_from_kg_uses_descriptions_with_provenance_ids():
    dataset = Dataset(name="umls", kind="kg", entities=[
        EntityRecord("virus", "virus", "A virus is a small infectious agent."),
        EntityRecord("no_text", "no text", None),
    ])
    corpus = corpus_from_dataset(dataset)
    assert corpus.ids == ["umls:doc:virus"]
    assert corpus[0].title == "virus" and corpus[0].entity_id == "virus" and corpus[0].source == "umls"


def test_corpus_from_names_only_kg_is_empty():
    dataset = Dataset(name="fb15k237", kind="kg", entities=[EntityRecord("/m/027rn", "Dominican Republic")])
    assert len(corpus_from_dataset(dataset)) == 0


def test_corpus_from_product_texts_keeps_item_ids():
    dataset = Dataset(name="amazon18_product_text", kind="corpus", documents=[
        DocumentRecord("office:12", "Stapler", "Staples 20 sheets.", item="office:12"),
        DocumentRecord("office:13", "Pen", "", item="office:13"),
        DocumentRecord("office:14", "", "", item="office:14"),
    ])
    corpus = corpus_from_dataset(dataset)
    assert corpus.ids == ["office:12", "office:13"]
    assert corpus.get("office:13").search_text == "Pen"
    assert corpus.get("office:12").entity_id == "office:12"
