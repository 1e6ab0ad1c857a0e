"""Triple classification (KG-BERT's second protocol) and the corrupted-negative sampler it shares
with reranker training.

A negative is a true triple with its head or its tail (chosen at random) replaced by a random
entity such that the corrupted triple is not known to be true (filtered against every split on
disk). Evaluation uses one negative per positive with a fixed seed, so every model sees the same
test set; the decision threshold is chosen on dev (the value that maximises dev accuracy) and then
applied unchanged to the evaluated split.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from kg_builder.datasets import TripleRecord
from kg_builder.errors import InvalidInputError

TripleScorer = Callable[[Sequence[TripleRecord]], np.ndarray]


def corrupt_triples(triples: Sequence[TripleRecord], entity_ids: Sequence[str], known: Iterable[TripleRecord], *,
                    per_positive: int = 1, seed: int = 0) -> list[TripleRecord]:
    """``per_positive`` corrupted negatives for each triple (head or tail replaced, filtered)."""
    if len(entity_ids) < 2:
        raise InvalidInputError("entities", "need at least two entities to corrupt triples")
    true = {(t.head, t.relation, t.tail) for t in known} | {(t.head, t.relation, t.tail) for t in triples}
    rng = random.Random(seed)
    out: list[TripleRecord] = []
    for t in triples:
        made = 0
        for _attempt in range(100 * per_positive):
            e = entity_ids[rng.randrange(len(entity_ids))]
            cand = (e, t.relation, t.tail) if rng.random() < 0.5 else (t.head, t.relation, e)
            if cand not in true:
                out.append(TripleRecord(*cand))
                made += 1
                if made == per_positive:
                    break
    return out


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold (midpoint between adjacent sorted scores) that maximises accuracy."""
    order = np.argsort(scores)
    s, y = scores[order], labels[order]
    # predicting positive for everything above position i: correct = negatives below + positives above
    neg_below = np.concatenate([[0], np.cumsum(1 - y)])
    pos_above = np.concatenate([[0], np.cumsum(y[::-1])])[::-1]
    best = int(np.argmax(neg_below + pos_above))
    if best == 0:
        return float(s[0] - 1e-6)
    if best == len(s):
        return float(s[-1] + 1e-6)
    return float((s[best - 1] + s[best]) / 2)


@dataclass
class TripleClassificationResult:
    accuracy: float
    threshold: float
    dev_accuracy: float
    positives: int
    negatives: int
    protocol: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def classify_triples(scorer: TripleScorer, *, dev: Sequence[TripleRecord], evaluated: Sequence[TripleRecord],
                     entity_ids: Sequence[str], known: Sequence[TripleRecord], seed: int = 0) -> TripleClassificationResult:
    """Accuracy on ``evaluated`` + one corrupted negative each, with the threshold chosen on dev."""
    def labelled(triples: Sequence[TripleRecord], seed_: int) -> tuple[list[TripleRecord], np.ndarray]:
        negatives = corrupt_triples(triples, entity_ids, known, per_positive=1, seed=seed_)
        return [*triples, *negatives], np.array([1] * len(triples) + [0] * len(negatives))

    dev_triples, dev_labels = labelled(dev, seed)
    dev_scores = np.asarray(scorer(dev_triples), dtype=np.float64)
    threshold = best_threshold(dev_scores, dev_labels)
    dev_acc = float(((dev_scores > threshold) == dev_labels).mean())
    ev_triples, ev_labels = labelled(evaluated, seed + 1)
    accuracy = float(((np.asarray(scorer(ev_triples), dtype=np.float64) > threshold) == ev_labels).mean())
    protocol = ("triple classification: each true triple plus one corrupted negative (head or tail replaced by a "
                "random entity, filtered against all known triples, fixed seed); threshold maximises dev accuracy")
    return TripleClassificationResult(accuracy=accuracy, threshold=threshold, dev_accuracy=dev_acc,
                                      positives=int(ev_labels.sum()), negatives=int((1 - ev_labels).sum()),
                                      protocol=protocol)
