import numpy as np
import pytest

from kg_builder.datasets import TripleRecord
from kg_builder.evaluation.triples import best_threshold, classify_triples, corrupt_triples

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
