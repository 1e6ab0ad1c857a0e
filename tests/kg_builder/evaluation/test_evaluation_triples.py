import numpy as np
import pytest

from kg_builder.datasets import TripleRecord
from kg_builder.evaluation.triples import (
    accuracy_at,
    best_threshold,
    classify_against_hard,
    classify_triples,
    corrupt_triples,
    hard_negatives,
    range_negatives,
    relation_ranges,
    rerank_metrics,
)

ENTITIES = [f"e{i}" for i in range(6)]
TRUE = [TripleRecord("e0", "r", "e1"), TripleRecord("e1", "r", "e2"), TripleRecord("e2", "r", "e3"),
        TripleRecord("e3", "r", "e4"), TripleRecord("e4", "r", "e5")]


def test_corruptions_are_never_known_triples_and_are_seeded():
    negatives = corrupt_triples(TRUE, ENTITIES, TRUE, per_positive=3, seed=1)
    assert len(negatives) == 15
    assert not {(n.head, n.relation, n.tail) for n in negatives} & {(t.head, t.relation, t.tail) for t in TRUE}
    for neg, pos in zip(negatives[::3], TRUE):
        assert neg.head == pos.head or neg.tail == pos.tail
    assert negatives == corrupt_triples(TRUE, ENTITIES, TRUE, per_positive=3, seed=1)


def test_best_threshold_separates_when_possible():
    scores = np.array([0.1, 0.2, 0.8, 0.9])
    labels = np.array([0, 0, 1, 1])
    assert 0.2 < best_threshold(scores, labels) < 0.8
    assert best_threshold(np.array([0.5, 0.6]), np.array([1, 1])) < 0.5


def test_classify_with_an_oracle_and_with_noise():
    truth = {(t.head, t.tail) for t in TRUE}

    def oracle(triples):
        return np.array([1.0 if (t.head, t.tail) in truth else 0.0 for t in triples])

    result = classify_triples(oracle, dev=TRUE[:3], evaluated=TRUE[3:], entity_ids=ENTITIES, known=TRUE)
    assert result.accuracy == 1.0 and result.positives == 2 and result.negatives == 2
    constant = classify_triples(lambda ts: np.zeros(len(ts)), dev=TRUE[:3], evaluated=TRUE[3:],
                                entity_ids=ENTITIES, known=TRUE)
    assert constant.accuracy == pytest.approx(0.5)


# --- hard negatives, same-range negatives, top-k rerank metrics -----------------------------------


def scripted_top_tails(table):
    """A generator's ranking given as a table: (head, relation) -> tails, best first."""
    calls = []

    def top_tails(queries):
        calls.append(list(queries))
        return [table.get(q, []) for q in queries]

    return top_tails, calls


def test_hard_negatives_are_the_generators_best_false_candidates_and_never_known():
    triples = [TripleRecord("e0", "r", "e1"), TripleRecord("e0", "r", "e2"), TripleRecord("e3", "r", "e4")]
    known = [*triples, TripleRecord("e0", "r", "e5")]  # e.g. a dev triple: known, so never a negative
    table = {("e0", "r"): ["e1", "e5", "e0", "e3", "e4", "e2", "e1"], ("e3", "r"): ["e4", "e0", "e1"]}
    top_tails, calls = scripted_top_tails(table)
    negatives = hard_negatives(triples, top_tails, known, per_positive=1)
    # e0 has two true triples -> two negatives, its best false ones in rank order (e0 itself skipped)
    assert negatives == [TripleRecord("e0", "r", "e3"), TripleRecord("e0", "r", "e4"), TripleRecord("e3", "r", "e0")]
    assert calls == [[("e0", "r"), ("e3", "r")]]  # each query asked once
    keys = {(t.head, t.relation, t.tail) for t in known}
    assert not {(n.head, n.relation, n.tail) for n in negatives} & keys
    more = hard_negatives(triples, scripted_top_tails(table)[0], known, per_positive=5)
    assert len(more) == len(set(more)) == 4  # only four false candidates exist; no repeats
    assert hard_negatives(triples, scripted_top_tails(table)[0], known, per_positive=0) == []


def test_range_negatives_use_the_relations_tails_and_are_not_known():
    triples = [TripleRecord("a", "eats", "fish"), TripleRecord("b", "eats", "meat"), TripleRecord("c", "eats", "hay"),
               TripleRecord("a", "likes", "b")]
    ranges = relation_ranges(triples)
    assert ranges == {"eats": ["fish", "meat", "hay"], "likes": ["b"]}
    negatives = range_negatives(triples, ranges, triples, per_positive=2, seed=3)
    eats = [n for n in negatives if n.relation == "eats"]
    assert len(eats) == 6 and all(n.tail in ranges["eats"] for n in eats)
    assert not set(negatives) & set(triples)
    assert not [n for n in negatives if n.relation == "likes"]  # its only range tail is the true one
    assert negatives == range_negatives(triples, ranges, triples, per_positive=2, seed=3)


def test_accuracy_at_a_threshold():
    assert accuracy_at(np.array([0.2, 0.9, 0.4]), np.array([0, 1, 1]), 0.5) == pytest.approx(2 / 3)


def test_rerank_metrics_oracle_constant_and_cross_fitted_weight():
    entities = [f"e{i}" for i in range(8)]
    dev = [TripleRecord(f"e{i}", "r", "e7") for i in range(6)]
    known = [TripleRecord("e0", "r", "e6")]

    def first_stage(queries):  # the true tail e7 always third behind e5 and e6 (e6 is known for e0)
        base = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 3.0, 2.0, 1.0])
        return np.tile(base, (len(queries), 1))

    def oracle(triples):
        return np.array([5.0 if t.tail == "e7" else -5.0 for t in triples])

    m = rerank_metrics(dev, first_stage, entities, oracle, known, k=3)
    assert m.in_top_k == 1.0
    # e0: e6 filtered -> e7 second; the others: third
    assert m.first_stage_mrr == pytest.approx((1 / 2 + 5 / 3) / 6)
    assert m.reranker_mrr == 1.0 and m.combined_mrr == 1.0 and m.reranker_hits_at_1 == 1.0
    assert m.weight > 0
    anti = rerank_metrics(dev, first_stage, entities, lambda ts: -oracle(ts), known, k=3)
    assert anti.reranker_mrr < anti.first_stage_mrr
    assert anti.weight == 0.0 and anti.combined_mrr == pytest.approx(anti.first_stage_mrr)
    shallow = rerank_metrics(dev, first_stage, entities, oracle, known, k=1)
    assert shallow.in_top_k == 0.0 and shallow.reranker_mrr == pytest.approx(shallow.first_stage_mrr)


def test_classify_against_hard_uses_the_generators_best_false_tail():
    dev, evaluated = TRUE[:3], TRUE[3:]
    top_tails, calls = scripted_top_tails({(f"e{i}", "r"): [f"e{i + 1}", "e0", "e5"] for i in range(5)})

    def oracle(triples):
        return np.array([1.0 if t in TRUE else 0.0 for t in triples])

    result = classify_against_hard(oracle, top_tails, dev=dev, evaluated=evaluated, known=TRUE)
    assert result.accuracy == 1.0 and result.positives == 2 and result.negatives == 2
    assert calls[1] == [("e3", "r"), ("e4", "r")]
    blind = classify_against_hard(lambda ts: np.zeros(len(ts)), top_tails, dev=dev, evaluated=evaluated, known=TRUE)
    assert blind.accuracy == pytest.approx(0.5)
