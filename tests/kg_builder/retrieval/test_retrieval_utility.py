"""Utility reranker: name matching, knowledge queries, metrics, reranking, persistence, training on UMLS."""

from __future__ import annotations

import pytest

from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord
from kg_builder.errors import InvalidInputError
from kg_builder.retrieval import Corpus, Document, HybridRetriever
from kg_builder.retrieval.bm25 import plural_stem
from kg_builder.retrieval.utility import (
    FEATURES,
    LINK_FEATURES,
    EntityMentions,
    UtilityReranker,
    UtilityWeights,
    fact_text,
    knowledge_query,
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


def test_knowledge_query_adds_known_facts_once_and_caps_them():
    facts = [fact_text("virus", "causes", "disease"), "virus  causes disease", fact_text("virus", "part_of", "cell")]
    assert knowledge_query("virus: a small agent", facts) == (
        "virus: a small agent. Known: virus causes disease; virus part of cell")
    assert knowledge_query("virus", facts, max_facts=1) == "virus. Known: virus causes disease"
    assert knowledge_query("virus") == "virus"
    with pytest.raises(InvalidInputError, match="entity_text"):
        knowledge_query("  ", facts)


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
    prior = UtilityWeights(mean=[0.5] * len(LINK_FEATURES), scale=[2.0] * len(LINK_FEATURES),
                           coef=[float(i) for i in range(len(LINK_FEATURES))], intercept=-1.0)
    graph = {"fever": {"cell", "organ"}, "cell": {"fever"}, "organ": {"fever"}}
    reranker = UtilityReranker(small_retriever, mentions, novelty_weights(), relation_cue_words(["prevents"]),
                               prior=prior, graph=graph)
    loaded = UtilityReranker.load(reranker.save(tmp_path / "utility"), retriever=small_retriever,
                                  mentions=mentions)
    assert loaded.weights == reranker.weights and loaded.cue_words == reranker.cue_words
    assert loaded.prior == prior and loaded.graph == reranker.graph
    hits = small_retriever.run("virus", k=3).hits
    assert loaded.run("virus", hits, entity_id="virus", known_neighbours={"cell"}) == reranker.run(
        "virus", hits, entity_id="virus", known_neighbours={"cell"})


def test_weights_of_another_feature_set_are_refused(small_retriever):
    with pytest.raises(InvalidInputError, match="coefficients"):
        UtilityReranker(small_retriever, EntityMentions(NAMES), UtilityWeights.zeros(3), [])


def test_the_graph_prior_prefers_the_document_naming_a_likely_missing_neighbour(encoder):
    """Both documents name one new entity and read alike; only the graph tells them apart: "fever"
    shares S's known neighbours (a likely missing neighbour), "granite" shares nothing. Similarity
    and mention counts tie (or favour granite, retrieved first); the trained model must not."""
    corpus = Corpus([
        Document(id="d:granite", text="A virus report mentions granite.", source="test"),
        Document(id="d:fever", text="A virus report mentions fever.", source="test"),
    ])
    retriever = HybridRetriever.build(corpus, encoder)
    names = {"virus": "virus", "fever": "fever", "granite": "granite", "cell": "cell", "organ": "organ",
             "tissue": "tissue"}
    graph = {"virus": {"cell", "organ", "tissue"}, "fever": {"cell", "organ", "tissue"},
             "granite": {"rock"}, "cell": {"virus", "fever"}, "organ": {"virus", "fever"},
             "tissue": {"virus", "fever"}, "rock": {"granite"}}
    coef = [1.0 if name == "missing_neighbour_any" else 0.0 for name in FEATURES]
    weights = UtilityWeights(mean=[0.0] * len(FEATURES), scale=[1.0] * len(FEATURES), coef=coef, intercept=0.0)
    prior_coef = [1.0 if name == "common_neighbours" else 0.0 for name in LINK_FEATURES]
    prior = UtilityWeights(mean=[0.0] * len(LINK_FEATURES), scale=[1.0] * len(LINK_FEATURES), coef=prior_coef,
                           intercept=-1.0)
    reranker = UtilityReranker(retriever, EntityMentions(names), weights, [], prior=prior, graph=graph)
    hits = retriever.run("virus report", k=2).hits
    result = reranker.run("virus", hits, entity_id="virus", known_neighbours={"cell", "organ", "tissue"})
    assert result.doc_ids[0] == "d:fever"
    fever, granite = result.hits
    assert fever.features["entity_mentions"] == granite.features["entity_mentions"]
    assert fever.features["missing_neighbour_best"] > granite.features["missing_neighbour_best"]
    assert fever.utility > granite.utility


def test_neighbours_are_undirected_without_self_loops():
    dataset = Dataset(name="g", kind="kg", entities=[EntityRecord("a", "a"), EntityRecord("b", "b")],
                      relations=[RelationRecord("r", "r")],
                      triples={"train": [TripleRecord("a", "r", "b"), TripleRecord("a", "r", "a")],
                               "test": [TripleRecord("b", "r", "c")]})
    assert neighbours_of(dataset, ["train"]) == {"a": {"b"}, "b": {"a"}}
    assert neighbours_of(dataset)["c"] == {"b"}
    with pytest.raises(InvalidInputError, match="graph_splits"):
        neighbours_of(dataset, ["dev"])


def test_trained_on_umls_beats_similarity_and_mention_counts_on_held_out_entities(umls, umls_retriever, tmp_path):
    result = train_utility_reranker(dataset=umls, retriever=umls_retriever, max_entities=60, seed=0)
    assert result.counts["test_entities"] == 18 and result.counts["train_entities"] == 42
    test = result.metrics
    utility = test["test/utility"]
    assert utility["precision@5"] > test["test/hybrid_similarity"]["precision@5"] + 0.1
    assert utility["precision@5"] > test["test/entity_mentions"]["precision@5"]
    assert utility["ndcg@5"] > test["test/entity_mentions"]["ndcg@5"]
    # The graph prior is what it learned from: sharing S's known neighbours marks a missing one.
    assert result.prior_coefficients["common_share_of_source"] > 0
    folder = result.save_to_directory(tmp_path / "run")
    assert (folder / "results.json").exists() and (folder / "model" / "model.safetensors").exists()
    assert (folder / "model" / "graph.json").exists()


def test_a_time_budget_too_small_for_any_entity_is_refused_naming_the_field(umls, umls_retriever):
    with pytest.raises(InvalidInputError, match="max_seconds"):
        train_utility_reranker(dataset=umls, retriever=umls_retriever, max_seconds=1e-6)
