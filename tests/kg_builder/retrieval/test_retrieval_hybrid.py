"""Hybrid retriever: RRF fusion, later additions, persistence."""

from __future__ import annotations

import pytest

from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.retrieval import RRF_K, Corpus, DenseIndex, Document, HybridRetriever


@pytest.fixture
def retriever(tiny_corpus, encoder) -> HybridRetriever:
    return HybridRetriever.build(tiny_corpus, encoder, recall_k=5)


class FixedIndex:
    """A stand-in index returning a fixed ranking (to check the fusion arithmetic exactly)."""

    def __init__(self, ranking, ids):
        self.ranking, self.ids = ranking, ids

    def __len__(self):
        return len(self.ids)

    def search(self, query, k):
        return self.ranking[:k]


def test_document_found_by_both_beats_single_list_winners():
    corpus = Corpus(Document(id=name, text=name, source="test") for name in ("x", "y", "z"))
    # BM25 alone puts x first, dense alone puts y first; z is second in both.
    bm25 = FixedIndex([(0, 9.0), (2, 5.0)], corpus.ids)
    dense = FixedIndex([(1, 0.9), (2, 0.8)], corpus.ids)
    result = HybridRetriever(corpus, bm25, dense).run("q", k=3)
    assert result.doc_ids == ["z", "x", "y"]
    assert result.hits[0].score == pytest.approx(2 / (RRF_K + 2))
    assert (result.hits[0].bm25_rank, result.hits[0].dense_rank) == (2, 2)
    assert (result.hits[1].bm25_rank, result.hits[1].dense_rank) == (1, None)


def test_real_indexes_rank_a_document_found_by_both_first(retriever):
    result = retriever.run("golden retriever", k=3)
    top = result.hits[0]
    assert top.doc_id == "t:retriever" and top.bm25_rank == 1 and top.dense_rank == 1
    assert top.text.startswith("The golden retriever")


def test_dense_only_matches_still_come_back(retriever):
    top = retriever.run("painkiller for headaches", k=2).hits[0]
    assert top.doc_id == "t:aspirin" and top.bm25_rank is None and top.dense_rank == 1


def test_weighted_fusion_ranks_by_normalised_scores(tiny_corpus, encoder):
    retriever = HybridRetriever.build(tiny_corpus, encoder, fusion="weighted", dense_weight=0.5)
    hits = retriever.run("golden retriever", k=3).hits
    assert hits[0].doc_id == "t:retriever" and hits[0].score == pytest.approx(1.0)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_a_document_added_later_is_retrievable(retriever):
    assert "api:1" not in retriever.run("marmalade recipe", k=3).doc_ids
    update = retriever.add_documents([Document(id="api:1", text="A recipe for bitter orange marmalade.",
                                               source="api")])
    assert update.added == [7]
    top = retriever.run("marmalade recipe", k=3).hits[0]
    assert top.doc_id == "api:1" and top.bm25_rank == 1 and top.dense_rank == 1


def test_replacing_a_document_changes_what_it_matches(retriever):
    retriever.add_documents([Document(id="t:paris", text="Marmalade is made from oranges.", source="api")])
    assert retriever.run("marmalade", k=1).doc_ids == ["t:paris"]
    assert "t:paris" not in retriever.run("Eiffel Tower", k=7).doc_ids[:1]


def test_save_load_round_trip(retriever, encoder, tmp_path):
    retriever.add_documents([Document(id="api:1", text="A recipe for marmalade.", source="api")])
    loaded = HybridRetriever.load(retriever.save(tmp_path / "retriever"), encoder)
    assert loaded.corpus.ids == retriever.corpus.ids and loaded.recall_k == 5
    assert loaded.run("marmalade", k=3) == retriever.run("marmalade", k=3)


def test_indexes_out_of_step_are_refused(retriever, encoder):
    bigger = Corpus(list(retriever.corpus) + [Document(id="extra", text="extra", source="test")])
    with pytest.raises(KGForgeError, match="out of step"):
        HybridRetriever(bigger, retriever.bm25, retriever.dense)


def test_empty_query_is_rejected(retriever):
    with pytest.raises(InvalidInputError, match="query"):
        retriever.run("   ")


def test_joined_retriever_searches_both_corpora_without_re_embedding(encoder, tiny_corpus):
    base = HybridRetriever.build(tiny_corpus, encoder)
    posted = Corpus([Document(id="api:okapi", text="The okapi is a forest giraffe that eats leaves.", source="api")])
    dense = DenseIndex(encoder)
    dense.add(posted.ids, posted.search_texts())
    joined = base.joined(posted, dense)
    assert len(joined.corpus) == len(tiny_corpus) + 1 and len(base.corpus) == len(tiny_corpus)
    assert joined.run("forest giraffe", k=1).doc_ids == ["api:okapi"]
    assert joined.dense.embeddings[joined.dense.row_of("api:okapi")].tolist() == dense.embeddings[0].tolist()
    assert joined.run("capital of France", k=1).doc_ids == base.run("capital of France", k=1).doc_ids
    with pytest.raises(KGForgeError, match="t:paris"):
        base.joined(Corpus([tiny_corpus.get("t:paris")]), DenseIndex.from_rows(encoder, ["t:paris"],
                                                                               base.dense.embeddings[:1]))
