"""Triple classification (KG-BERT's second protocol) and the corrupted-negative sampler it shares
with reranker training.

A negative is a true triple with its head or its tail (chosen at random) replaced by a random
entity such that the corrupted triple is not known to be true (filtered against every split on
disk). Evaluation uses one negative per positive with a fixed seed, so every model sees the same
test set; the decision threshold is chosen on dev (the value that maximises dev accuracy) and then
applied unchanged to the evaluated split.

Reranker training and its dev report also use *hard* negatives: the false candidates a generator
proposes (:func:`hard_negatives`, e.g. ComplEx's top-k tails for ``(h, r)`` that are not known
true) and same-relation-range tails (:func:`range_negatives`), and the top-k rerank metrics of
:func:`rerank_metrics`. "Known" is whatever the caller passes: training and dev selection pass
train + dev only, so no label ever comes from the test split.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
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


# --------------------------------------------------------------------------------------------
# Hard negatives: what the generators propose that is not true

TopTails = Callable[[Sequence[tuple[str, str]]], Sequence[Sequence[str]]]
"""``(head, relation)`` queries -> each query's candidate tails, best first (a generator's top-k)."""


def _key(t: TripleRecord) -> tuple[str, str, str]:
    return (t.head, t.relation, t.tail)


def hard_negatives(triples: Sequence[TripleRecord], top_tails: TopTails, known: Iterable[TripleRecord], *,
                   per_positive: int = 1) -> list[TripleRecord]:
    """A generator's false candidates for the ``(head, relation)`` queries of ``triples``.

    For each query, its candidates are walked best first; a candidate ``c`` becomes the negative
    ``(head, relation, c)`` unless that triple is in ``known`` or in ``triples`` (or ``c`` is the
    head itself). A query with ``n`` true triples in ``triples`` gets up to ``per_positive * n``
    distinct negatives: its highest-ranked false candidates.
    """
    if per_positive < 0:
        raise InvalidInputError("per_positive", "must be zero or more")
    if per_positive == 0 or not triples:
        return []
    true = {_key(t) for t in known} | {_key(t) for t in triples}
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for t in triples:
        counts[(t.head, t.relation)] += 1
    queries = list(counts)
    out: list[TripleRecord] = []
    for (head, relation), candidates in zip(queries, top_tails(queries), strict=True):
        want = per_positive * counts[(head, relation)]
        seen: set[str] = set()
        for c in candidates:
            if len(seen) == want:
                break
            if c == head or c in seen or (head, relation, c) in true:
                continue
            seen.add(c)
            out.append(TripleRecord(head, relation, c))
    return out


TopPairs = Callable[[Sequence[str], Sequence[int]], Sequence[Sequence[tuple[str, str]]]]
"""``(heads, depths)`` -> each head's best ``depth`` candidate ``(relation, tail)`` pairs over every
relation, best first."""


def head_negatives(triples: Sequence[TripleRecord], top_pairs: TopPairs, known: Iterable[TripleRecord], *,
                   per_positive: int = 1) -> list[TripleRecord]:
    """A generator's false candidates for a head over *every* relation: what the pipeline proposes
    for S when the relation it picked is wrong as well as the tail (:func:`hard_negatives` keeps
    the true triple's relation). A head with ``n`` true triples in ``triples`` gets up to
    ``per_positive * n`` of its best-ranked ``(head, relation, tail)`` that are not known."""
    if per_positive < 0:
        raise InvalidInputError("per_positive", "must be zero or more")
    if per_positive == 0 or not triples:
        return []
    true = {_key(t) for t in known} | {_key(t) for t in triples}
    counts: dict[str, int] = defaultdict(int)
    for t in triples:
        counts[t.head] += 1
    known_per_head: dict[str, int] = defaultdict(int)
    for h, _, _ in true:
        known_per_head[h] += 1
    heads = list(counts)
    # deep enough to walk past the head's known triples (the model ranks them first) and itself
    depths = [known_per_head[h] + per_positive * counts[h] + 8 for h in heads]
    out: list[TripleRecord] = []
    for head, pairs in zip(heads, top_pairs(heads, depths), strict=True):
        want = per_positive * counts[head]
        made = 0
        for relation, tail in pairs:
            if made == want:
                break
            if tail == head or (head, relation, tail) in true:
                continue
            made += 1
            out.append(TripleRecord(head, relation, tail))
    return out


def relation_ranges(triples: Iterable[TripleRecord]) -> dict[str, list[str]]:
    """Each relation's tails in ``triples`` (its observed range), in first-seen order."""
    ranges: dict[str, dict[str, None]] = defaultdict(dict)
    for t in triples:
        ranges[t.relation][t.tail] = None
    return {r: list(tails) for r, tails in ranges.items()}


def range_negatives(triples: Sequence[TripleRecord], ranges: Mapping[str, Sequence[str]],
                    known: Iterable[TripleRecord], *, per_positive: int = 1, seed: int = 0) -> list[TripleRecord]:
    """For each triple, ``per_positive`` tails drawn from the relation's range (type-plausible)
    such that the new triple is not known; fewer when the range has no such tail."""
    if per_positive < 0:
        raise InvalidInputError("per_positive", "must be zero or more")
    true = {_key(t) for t in known} | {_key(t) for t in triples}
    rng = random.Random(seed)
    out: list[TripleRecord] = []
    for t in triples:
        tails = ranges.get(t.relation) or []
        made: set[str] = set()
        for _attempt in range(20 * per_positive):
            if len(made) == per_positive or not tails:
                break
            c = tails[rng.randrange(len(tails))]
            if c != t.head and c not in made and (t.head, t.relation, c) not in true:
                made.add(c)
                out.append(TripleRecord(t.head, t.relation, c))
    return out


def accuracy_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Share of ``scores > threshold`` that agree with ``labels`` (1 true, 0 false)."""
    if len(scores) == 0:
        return float("nan")
    return float(((np.asarray(scores) > threshold) == np.asarray(labels).astype(bool)).mean())


def classify_against_hard(scorer: TripleScorer, top_tails: TopTails, *, dev: Sequence[TripleRecord],
                          evaluated: Sequence[TripleRecord], known: Iterable[TripleRecord]) -> TripleClassificationResult:
    """Accuracy on ``evaluated`` + one hard negative each (a generator's best false candidate for
    the triple's ``(h, r)``, filtered against ``known``), with the threshold chosen the same way on dev."""
    known = list(known)

    def labelled(triples: Sequence[TripleRecord]) -> tuple[list[TripleRecord], np.ndarray]:
        negatives = hard_negatives(triples, top_tails, known, per_positive=1)
        return [*triples, *negatives], np.array([1] * len(triples) + [0] * len(negatives))

    dev_triples, dev_labels = labelled(dev)
    dev_scores = np.asarray(scorer(dev_triples), dtype=np.float64)
    threshold = best_threshold(dev_scores, dev_labels)
    ev_triples, ev_labels = labelled(evaluated)
    accuracy = accuracy_at(np.asarray(scorer(ev_triples), dtype=np.float64), ev_labels, threshold)
    protocol = ("triple classification against hard negatives: each true triple plus the first-stage generator's "
                "best-ranked tail for its (head, relation) that is not a known triple (filtered against all splits); "
                "threshold maximises dev accuracy on the same construction")
    return TripleClassificationResult(accuracy=accuracy, threshold=threshold,
                                      dev_accuracy=accuracy_at(dev_scores, dev_labels, threshold),
                                      positives=int(ev_labels.sum()), negatives=int((1 - ev_labels).sum()),
                                      protocol=protocol)


# --------------------------------------------------------------------------------------------
# Reranking a first stage's top-k


@dataclass
class RerankMetrics:
    """MRR and Hits@1 of the true tail over ``queries`` (true triples), tail direction, filtered.

    ``first_stage``: the first stage's own order; ``reranker``: its top-k reordered by the
    reranker alone; ``combined``: reordered by ``first-stage score + weight * reranker logit``,
    with ``weight`` chosen on one half of the queries and applied to the other (2-fold), so the
    combined numbers are not fitted on the queries they report. Outside the top-k ranks are the
    first stage's; ``in_top_k`` is the share of true tails the rerank can reach.
    """

    queries: int
    k: int
    in_top_k: float
    first_stage_mrr: float
    reranker_mrr: float
    combined_mrr: float
    first_stage_hits_at_1: float
    reranker_hits_at_1: float
    combined_hits_at_1: float
    weight: float
    protocol: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 1e6)


def _rank(first: np.ndarray, second: np.ndarray, weight: float, target: int) -> int:
    """1-based rank of ``target`` under ``first + weight * second`` (``second`` alone for the
    largest weight); ties count against it."""
    combined = first + weight * second if weight < WEIGHTS[-1] else second
    return int((combined > combined[target]).sum() + (combined == combined[target]).sum())


def rerank_metrics(triples: Sequence[TripleRecord], first_stage: Callable[[Sequence[tuple[str, str]]], np.ndarray],
                   entity_ids: Sequence[str], reranker: TripleScorer, known: Iterable[TripleRecord], *, k: int = 10,
                   seed: int = 0) -> RerankMetrics:
    """Rerank a first stage's filtered top-k tails for each true triple (see :class:`RerankMetrics`).

    Args:
        triples: the true triples to rank (e.g. dev).
        first_stage: ``[(head, relation)] -> [n, len(entity_ids)]`` scores (ComplEx's ``score``).
        entity_ids: the column order of ``first_stage``.
        reranker: triples -> logits (the cross-encoder's ``score``).
        known: triples filtered out of each ranking (except the target itself).
    """
    if not triples:
        raise InvalidInputError("triples", "nothing to rank")
    index = {e: i for i, e in enumerate(entity_ids)}
    by_query: dict[tuple[str, str], set[str]] = defaultdict(set)
    for t in [*known, *triples]:
        by_query[(t.head, t.relation)].add(t.tail)
    queries = list(dict.fromkeys((t.head, t.relation) for t in triples))
    scores = np.asarray(first_stage(queries), dtype=np.float64)
    row = {q: i for i, q in enumerate(queries)}
    lists: list[tuple[int, list[str], np.ndarray, int]] = []  # (first-stage rank, top-k, their scores, target pos)
    to_score: dict[tuple[str, str, str], None] = {}
    for t in triples:
        s = scores[row[(t.head, t.relation)]].copy()
        for other in by_query[(t.head, t.relation)] - {t.tail}:
            s[index[other]] = -np.inf
        target = s[index[t.tail]]
        first_rank = int((s > target).sum() + (s == target).sum())
        top = np.argsort(-s, kind="stable")[:k]
        top = [int(i) for i in top if np.isfinite(s[i])]
        names = [entity_ids[i] for i in top]
        pos = names.index(t.tail) if t.tail in names else -1
        lists.append((first_rank, names, s[top], pos))
        if pos >= 0:
            for c in names:
                to_score[(t.head, t.relation, c)] = None
    keys = list(to_score)
    logits = dict(zip(keys, np.asarray(reranker([TripleRecord(*key) for key in keys]), dtype=np.float64).tolist(),
                      strict=True)) if keys else {}

    def ranks(weight: float, members: Sequence[int]) -> np.ndarray:
        out = []
        for j in members:
            first_rank, names, first, pos = lists[j]
            if pos < 0:
                out.append(first_rank)
                continue
            second = np.array([logits[(triples[j].head, triples[j].relation, c)] for c in names])
            out.append(_rank(first, second, weight, pos))
        return np.asarray(out, dtype=np.float64)

    everyone = list(range(len(triples)))
    order = random.Random(seed).sample(everyone, len(everyone))
    folds = [sorted(order[: len(order) // 2]), sorted(order[len(order) // 2:])]
    combined = np.zeros(len(triples))
    chosen = []
    for fit, apply in ((folds[0], folds[1]), (folds[1], folds[0])):
        if not fit or not apply:
            continue
        best = max(WEIGHTS, key=lambda w: (float((1.0 / ranks(w, fit)).mean()), -w))
        chosen.append(best)
        combined[apply] = ranks(best, apply)
    if len(triples) == 1:
        combined[:] = ranks(0.0, everyone)
    weight = max(WEIGHTS, key=lambda w: (float((1.0 / ranks(w, everyone)).mean()), -w))
    first_ranks = ranks(0.0, everyone)
    rerank_ranks = ranks(WEIGHTS[-1], everyone)
    protocol = (f"tail prediction for each true triple; the first stage's filtered top-{k} (other known tails "
                f"removed) reordered, ranks beyond top-{k} unchanged; combined = first-stage score + weight x "
                f"reranker logit, weight from {list(WEIGHTS)} chosen on one half of the triples and applied to "
                f"the other (2-fold); reported weight is the one chosen on all of them")
    return RerankMetrics(
        queries=len(triples), k=k, in_top_k=float(np.mean([pos >= 0 for *_, pos in lists])),
        first_stage_mrr=float((1.0 / first_ranks).mean()), reranker_mrr=float((1.0 / rerank_ranks).mean()),
        combined_mrr=float((1.0 / combined).mean()), first_stage_hits_at_1=float((first_ranks == 1).mean()),
        reranker_hits_at_1=float((rerank_ranks == 1).mean()), combined_hits_at_1=float((combined == 1).mean()),
        weight=float(weight), protocol=protocol)
