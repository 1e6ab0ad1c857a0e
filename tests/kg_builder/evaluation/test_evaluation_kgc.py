"""Filtered ranking on a 5-entity graph with a hand-written scorer; every rank is computed by hand."""

import numpy as np
import pytest

from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord
from kg_builder.errors import DatasetError, InvalidInputError
from kg_builder.evaluation import Query, RankingMetrics, evaluate_ranking, evaluate_split, realistic_rank

ENTITIES = ["A", "B", "C", "D", "E"]
TRAIN = [TripleRecord("A", "r", "B"), TripleRecord("C", "r", "A")]
TEST = [TripleRecord("A", "r", "C"), TripleRecord("D", "r", "A")]

# Scores over A, B, C, D, E for the four queries the two test triples ask.
SCORES = {
    # (A, r, ?) -> C. Raw: A, B, E above -> 4. Filtered: B is a train answer -> 3.
    Query("A", "r", False): [0.9, 0.8, 0.7, 0.1, 0.75],
    # (?, r, C) -> A. B above, D tied: 1 + 1 + 1/2 = 2.5 raw and filtered (no other answer).
    Query("C", "r", True): [0.5, 0.6, 0.2, 0.5, 0.1],
    # (D, r, ?) -> A: top score, rank 1.
    Query("D", "r", False): [1.0, 0.0, 0.2, 0.3, 0.1],
    # (?, r, A) -> D. Raw: A, C above -> 3. Filtered: C is a train answer ((C, r, A)) -> 2.
    Query("A", "r", True): [0.9, 0.1, 0.8, 0.3, 0.2],
}


class FakeScorer:
    def __init__(self):
        self.calls: list[list[Query]] = []

    def __call__(self, queries):
        self.calls.append(list(queries))
        return np.array([SCORES[q] for q in queries])


def evaluate(**kwargs):
    return evaluate_ranking(FakeScorer(), entity_ids=ENTITIES, triples=TEST, known=TRAIN, **kwargs)


def test_filtered_metrics_match_hand_computed_ranks():
    result = evaluate()
    f = result.filtered
    assert result.ranks == {"tail": [3.0, 1.0], "head": [2.5, 2.0]}
    assert f["tail"] == RankingMetrics(2, 2.0, pytest.approx((1 / 3 + 1) / 2), 0.5, 1.0, 1.0)
    assert f["head"] == RankingMetrics(2, 2.25, pytest.approx((1 / 2.5 + 1 / 2) / 2), 0.0, 1.0, 1.0)
    assert f["both"].mr == pytest.approx((3 + 1 + 2.5 + 2) / 4)
    assert f["both"].mrr == pytest.approx((1 / 3 + 1 + 1 / 2.5 + 1 / 2) / 4)
    assert (f["both"].hits_at_1, f["both"].hits_at_3, f["both"].hits_at_10) == (0.25, 1.0, 1.0)
    assert f["both"].count == 4 and result.num_triples == 2 and result.num_entities == 5


def test_raw_metrics_do_not_filter_other_answers():
    r = evaluate().raw
    assert r["tail"] == RankingMetrics(2, 2.5, pytest.approx((1 / 4 + 1) / 2), 0.5, 0.5, 1.0)
    assert r["head"] == RankingMetrics(2, 2.75, pytest.approx((1 / 2.5 + 1 / 3) / 2), 0.0, 1.0, 1.0)
    assert evaluate().filtered["both"].mrr > r["both"].mrr


def test_other_test_triples_are_filtered_too():
    # (A, r, D) is another test answer of (A, r, ?): it must not push C down either.
    scores = dict(SCORES)
    scores[Query("A", "r", False)] = [0.9, 0.8, 0.7, 0.95, 0.75]

    def scorer_with_d(queries):
        return np.array([scores[q] for q in queries])

    triples = [*TEST, TripleRecord("A", "r", "D")]
    scores[Query("D", "r", True)] = [0.1, 0.2, 0.3, 0.4, 0.5]  # (?, r, D) -> A: B, C, D, E above -> 5
    result = evaluate_ranking(scorer_with_d, entity_ids=ENTITIES, triples=triples, known=TRAIN)
    assert result.ranks["tail"] == [3.0, 1.0, 1.0]  # C: A, E above (B and D filtered); D: top (B, C filtered)
    assert result.ranks["head"] == [2.5, 2.0, 5.0]


def test_scorer_sees_each_query_once_and_ranks_all_entities():
    scorer = FakeScorer()
    evaluate_ranking(scorer, entity_ids=ENTITIES, triples=TEST + TEST, known=TRAIN, batch_size=3)
    seen = [q for call in scorer.calls for q in call]
    assert sorted(seen) == sorted(SCORES) and [len(c) for c in scorer.calls] == [3, 1]


def test_ties_take_the_mean_rank_so_a_constant_scorer_is_not_rewarded():
    assert realistic_rank(np.zeros(5), 2) == 3.0
    assert realistic_rank(np.array([1.0, 0.5, 0.5, -np.inf]), 1) == 2.5
    result = evaluate_ranking(lambda qs: np.zeros((len(qs), 5)), entity_ids=ENTITIES, triples=TEST, known=TRAIN)
    assert result.raw["both"].mr == 3.0 and result.raw["both"].hits_at_1 == 0.0
    # Filtering removes one tied competitor from two of the queries: 1 + 3 / 2 = 2.5
    assert result.ranks == {"tail": [2.5, 3.0], "head": [3.0, 2.5]}


def test_reranker_reorders_only_the_filtered_top_k():
    seen: list[tuple[Query, list[str]]] = []

    answer = {Query("A", "r", False): "C", Query("D", "r", False): "A", Query("C", "r", True): "A",
              Query("A", "r", True): "D"}

    def reranker(query, candidates):  # an oracle: puts the answer first when it gets it
        seen.append((query, list(candidates)))
        return [1.0 if c == answer[query] else 0.0 for c in candidates]

    k3 = evaluate(reranker=reranker, rerank_k=3, reranker_name="cross-encoder")
    # (A, r, ?): the filtered top-3 is A, E, C (B filtered); (?, r, A): A, D, E (C filtered).
    assert (Query("A", "r", False), ["A", "E", "C"]) in seen
    assert (Query("A", "r", True), ["A", "D", "E"]) in seen
    assert k3.ranks == {"tail": [1.0, 1.0], "head": [1.0, 1.0]}
    assert "cross-encoder rescores the first stage's filtered top-3" in k3.protocol
    assert k3.raw == evaluate().raw  # raw metrics stay first-stage
    # With k=2, C is outside the top-2 (A, E): it stays behind them, at its first-stage rank 3.
    k2 = evaluate(reranker=reranker, rerank_k=2)
    assert k2.ranks["tail"][0] == 3.0


def test_protocol_and_errors():
    result = evaluate(ranker="bi-encoder dense-toy")
    assert "bi-encoder dense-toy ranks all 5 entities" in result.protocol and "inverse relation" in result.protocol
    with pytest.raises(InvalidInputError, match="names an entity"):
        evaluate_ranking(FakeScorer(), entity_ids=ENTITIES[:3], triples=TEST, known=TRAIN)
    with pytest.raises(InvalidInputError, match="shape"):
        evaluate_ranking(lambda qs: np.zeros((len(qs), 4)), entity_ids=ENTITIES, triples=TEST, known=TRAIN)


def test_evaluate_split_filters_with_every_split_on_disk():
    dataset = Dataset(name="toy", kind="kg", entities=[EntityRecord(e, e.lower()) for e in ENTITIES],
                      relations=[RelationRecord("r", "relates to")], triples={"train": TRAIN, "test": TEST})
    result = evaluate_split(FakeScorer(), dataset, "test")
    assert result.ranks == evaluate().ranks
    assert (result.dataset, result.split) == ("toy", "test")
    assert "train+test triples present on disk" in result.protocol
    assert result.as_dict()["metrics"]["filtered"]["both"]["hits_at_1"] == 0.25
    with pytest.raises(DatasetError, match="no 'dev' split"):
        evaluate_split(FakeScorer(), dataset, "dev")
