"""Utility reranker: name matching, metrics, reranking, persistence, training on UMLS."""

from __future__ import annotations

import pytest

from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord
from kg_builder.retrieval import Corpus, Document, HybridRetriever
from kg_builder.retrieval.bm25 import plural_stem
from kg_builder.retrieval.utility import (
    FEATURES,
    EntityMentions,
    UtilityReranker,
    UtilityWeights,
    ndcg_at,
    neighbours_of,
    precision_at,
    relation_cue_words,
    train_utility_reranker,
)

NAMES = {"virus": "virus", "cell": "cell", "sign_or_symptom": "sign or symptom", "organ": "organ",
         "fever": "fever", "vaccine": "vaccine"}


def test_mentions_match_whole_names_plurals_and_or_parts():
    mentions = EntityMentions(NAMES)
    found = mentions.find("Viruses infect cells of an organism; a symptom such as fever follows.")
    assert found == {"virus", "cell", "sign_or_symptom", "fever"}  # not "organ" inside "organism"


def test_relation_cue_words_keep_content_words():
    cues = relation_cue_words(["causes", "part of", "interacts with"])
    assert cues == {plural_stem("cause"), "part", "interact"}


def test_ranking_metrics():
    assert precision_at([1, 0, 1, 0], 2) == 0.5
    assert ndcg_at([1, 0, 0], 3) == pytest.approx(1.0)
    assert ndcg_at([0, 1], 2) == pytest.approx((1 / 1.5849625) / 1.0)
    assert ndcg_at([0, 0], 2) is None


@pytest.fixture
def small_retriever(encoder) -> HybridRetriever:
    corpus = Corpus([
        Document(id="d:similar", text="The virus is a virus. Virus, virus.", source="test"),
        Document(id="d:novel", text="The virus causes fever; a vaccine prevents it.", source="test"),
        Document(id="d:known", text="The virus infects a cell.", source="test"),
    ])
    return HybridRetriever.build(corpus, encoder)


def novelty_weights() -> UtilityWeights:
    """Hand-set weights: only novel mentions count."""
    coef = [1.0 if name == "novel_mentions" else 0.0 for name in FEATURES]
    return UtilityWeights(mean=[0.0] * len(FEATURES), scale=[1.0] * len(FEATURES), coef=coef, intercept=0.0)


def test_rerank_puts_the_document_with_new_knowledge_first(small_retriever):
    reranker = UtilityReranker(small_retriever, EntityMentions(NAMES), novelty_weights(),
                               relation_cue_words(["causes"]))
    hits = small_retriever.run("virus", k=3).hits
    result = reranker.run("virus", hits, entity_id="virus", known_neighbours={"cell"})
    assert result.doc_ids[0] == "d:novel"
    top = result.hits[0]
    assert top.features["mentions_source"] == 1.0 and top.features["relation_cues"] > 0
    assert top.similarity_rank == [h.doc_id for h in hits].index("d:novel") + 1
    known = next(h for h in result.hits if h.doc_id == "d:known")
    assert known.features["novel_mentions"] == 0.0 and known.features["neighbour_mentions"] > 0


def test_save_load_round_trip(small_retriever, tmp_path):
    mentions = EntityMentions(NAMES)
    reranker = UtilityReranker(small_retriever, mentions, novelty_weights(), relation_cue_words(["prevents"]))
    loaded = UtilityReranker.load(reranker.save(tmp_path / "utility"), retriever=small_retriever,
                                  mentions=mentions)
    assert loaded.weights == reranker.weights and loaded.cue_words == reranker.cue_words
    hits = small_retriever.run("virus", k=3).hits
    assert loaded.run("virus", hits, entity_id="virus") == reranker.run("virus", hits, entity_id="virus")


def test_neighbours_are_undirected_without_self_loops():
    dataset = Dataset(name="g", kind="kg", entities=[EntityRecord("a", "a"), EntityRecord("b", "b")],
                      relations=[RelationRecord("r", "r")],
                      triples={"train": [TripleRecord("a", "r", "b"), TripleRecord("a", "r", "a")]})
    assert neighbours_of(dataset) == {"a": {"b"}, "b": {"a"}}


def test_trained_on_umls_beats_similarity_only_on_held_out_entities(umls, umls_retriever, tmp_path):
    result = train_utility_reranker(dataset=umls, retriever=umls_retriever, max_entities=40, seed=0)
    assert result.counts["test_entities"] == 12 and result.counts["train_entities"] == 28
    utility, similarity = result.metrics["test/utility"], result.metrics["test/hybrid_similarity"]
    assert utility["precision@5"] > similarity["precision@5"]
    assert utility["ndcg@5"] > similarity["ndcg@5"]
    folder = result.save_to_directory(tmp_path / "run")
    assert (folder / "results.json").exists() and (folder / "model" / "model.safetensors").exists()
