"""Link-prediction types shared by the models and the evaluation, below both.

``kg_builder.models`` (ComplEx, the dense bi-encoder, the hybrid ranker, the cross-encoder) score
:class:`Query` objects and the evaluation (:mod:`kg_builder.evaluation.kgc`) ranks them; keeping
the query type, the scorer protocols and the two rank helpers here lets each import them without
importing the other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, Protocol

import numpy as np

from kg_builder.datasets import TripleRecord


class Query(NamedTuple):
    """A link-prediction query: ``(entity, relation, ?)``, or ``(?, relation, entity)`` when ``inverse``."""

    entity: str
    relation: str
    inverse: bool = False


class Scorer(Protocol):
    """Scores queries against all entities: ``[len(queries), len(entity_ids)]``, higher is better.

    Columns follow the ``entity_ids`` order given to :func:`evaluate_ranking`.
    """

    def __call__(self, queries: Sequence[Query]) -> np.ndarray: ...


# (query, candidate entity ids) -> one score per candidate, higher is better.
Reranker = Callable[[Query, Sequence[str]], Sequence[float]]


class ProgressLike(Protocol):
    def phase(self, name: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...


def realistic_rank(scores: np.ndarray, target: int) -> float:
    """1 + (#scores above the target's) + (#other scores equal to it) / 2. ``-inf`` entries never count."""
    s = scores[target]
    greater = int(np.count_nonzero(scores > s))
    equal = int(np.count_nonzero(scores == s)) - 1
    return 1.0 + greater + equal / 2.0


def answer_index(triples: Iterable[TripleRecord]) -> dict[Query, set[str]]:
    """Every known answer of every query in both directions: ``(h, r) -> {t}`` and ``(t, r^-1) -> {h}``."""
    index: dict[Query, set[str]] = defaultdict(set)
    for t in triples:
        index[Query(t.head, t.relation, False)].add(t.tail)
        index[Query(t.tail, t.relation, True)].add(t.head)
    return index


__all__ = ["ProgressLike", "Query", "Reranker", "Scorer", "answer_index", "realistic_rank"]
