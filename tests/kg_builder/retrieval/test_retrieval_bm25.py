"""BM25 index: exact terms, stopwords, optional plural stemming, save/load."""

from __future__ import annotations

import pytest

from kg_builder.errors import InvalidInputError
from kg_builder.retrieval import BM25Config, BM25Index
from kg_builder.retrieval.bm25 import Tokenizer, plural_stem


def test_finds_the_document_with_the_exact_term(tiny_corpus):
    index = BM25Index().build(tiny_corpus.search_texts())
    hits = index.search("strait", k=3)
    assert [tiny_corpus[i].id for i, _ in hits] == ["t:bridge"]


def test_more_shared_terms_rank_higher(tiny_corpus):
    index = BM25Index().build(tiny_corpus.search_texts())
    hits = index.search("golden retriever", k=5)
    assert [tiny_corpus[i].id for i, _ in hits] == ["t:retriever", "t:bridge"]
    assert hits[0][1] > hits[1][1] > 0


def test_stopword_only_query_matches_nothing(tiny_corpus):
    index = BM25Index().build(tiny_corpus.search_texts())
    assert index.search("the of and is", k=5) == []


def test_plural_stemming_is_optional():
    texts = ["Viruses replicate inside living cells.", "A stapler joins sheets of paper."]
    assert BM25Index().build(texts).search("virus", k=2) == []
    stemmed = BM25Index(BM25Config(stemming="plural")).build(texts)
    assert [i for i, _ in stemmed.search("virus cell", k=2)] == [0]
    assert [plural_stem(w) for w in ("viruses", "studies", "boxes", "class", "analysis")] == [
        "virus", "study", "box", "class", "analysis"]
    for singular, plural in [("virus", "viruses"), ("cause", "causes"), ("house", "houses"),
                             ("cell", "cells")]:
        assert plural_stem(singular) == plural_stem(plural)


def test_tokenizer_lowercases_and_drops_stopwords():
    assert Tokenizer()("The Virus and THE cell") == ["virus", "cell"]


def test_save_load_gives_the_same_results(tiny_corpus, tmp_path):
    index = BM25Index(BM25Config(k1=1.2, stemming="plural")).build(tiny_corpus.search_texts())
    loaded = BM25Index.load(index.save(tmp_path / "bm25"))
    assert loaded.config == index.config and len(loaded) == len(tiny_corpus)
    assert loaded.search("golden dogs", k=3) == index.search("golden dogs", k=3)


def test_empty_index_and_bad_k():
    index = BM25Index().build([])
    assert index.search("anything", k=3) == []
    with pytest.raises(InvalidInputError, match="k"):
        index.search("anything", k=0)
