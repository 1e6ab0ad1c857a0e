"""Retrieval over a real corpus: the UMLS entity descriptions (skipped without the shared data)."""

from __future__ import annotations

from kg_builder.retrieval import ExtractiveSummariser, corpus_from_dataset


def test_umls_corpus_has_one_description_per_entity(umls):
    corpus = corpus_from_dataset(umls)
    # entity2textlong.txt describes all 135 entities (134 newlines: the last line has none).
    assert len(corpus) == 135 and corpus.get("umls:doc:virus").title == "virus"


def test_umls_virus_query_finds_the_virus_description(umls_retriever, encoder):
    result = umls_retriever.run("virus", k=3)
    assert "umls:doc:virus" in result.doc_ids
    summary = ExtractiveSummariser(encoder).run("virus", result.hits, token_budget=100)
    assert "umls:doc:virus" in summary.document_ids and summary.token_count <= 100
