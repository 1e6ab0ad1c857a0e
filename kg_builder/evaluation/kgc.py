"""Knowledge-graph completion evaluation: filtered link-prediction ranking (Bordes et al. 2013).

For every evaluation triple (h, r, t) two queries are ranked against **all** entities of the
dataset:

* tail prediction ``(h, r, ?)`` whose answer is ``t``;
* head prediction ``(?, r, t)``, asked as ``(t, r^-1, ?)`` (the inverse relation) whose answer is ``h``.

*Filtered* ranks ignore every other entity that also answers the query in a known triple (the
train, dev and test splits present on disk), so a model is not punished for ranking another true
answer first; *raw* ranks ignore nothing. Ties count as the mean of the optimistic and the
pessimistic rank (PyKEEN's "realistic" rank), so a constant scorer gets the middle rank, not rank 1.
Reported: MR, MRR, Hits@1/3/10 per direction and over both directions (the average of the two:
each direction has one query per triple).

The first stage is any :data:`Scorer` (today the dense bi-encoder of
:mod:`kg_builder.models.dense`). A :data:`Reranker` (the cross-encoder, later) may rescore the
first stage's filtered top-k; entities outside the top-k keep their first-stage order behind it.
The returned :class:`KGCResult` states the protocol in words.

Example::

    result = evaluate_split(model.score, dataset, "test", ranker="bi-encoder dense-umls")
    print(result.filtered["both"].hits_at_10, result.protocol)
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from kg_builder.datasets import Dataset, TripleRecord
from kg_builder.errors import DatasetError, InvalidInputError
from kg_builder.ranking import ProgressLike, Query, Reranker, Scorer, answer_index, realistic_rank

Direction = Literal["tail", "head"]
DIRECTIONS: tuple[Direction, ...] = ("tail", "head")
HITS_AT = (1, 3, 10)


@dataclass(frozen=True, slots=True)
class RankingMetrics:
    """Mean rank, mean reciprocal rank and Hits@1/3/10 over ``count`` ranks."""

    count: int
    mr: float
    mrr: float
    hits_at_1: float
    hits_at_3: float
    hits_at_10: float

    @classmethod
    def from_ranks(cls, ranks: Sequence[float] | np.ndarray) -> RankingMetrics:
        r = np.asarray(ranks, dtype=np.float64)
        if r.size == 0:
            return cls(0, float("nan"), float("nan"), float("nan"), float("nan"), float("nan"))
        hits = {k: float(np.mean(r <= k)) for k in HITS_AT}
        return cls(int(r.size), float(r.mean()), float(np.mean(1.0 / r)), hits[1], hits[3], hits[10])

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class KGCResult:
    """Metrics of one evaluation run.

    ``filtered`` and ``raw`` map ``"tail"``, ``"head"`` and ``"both"`` to :class:`RankingMetrics`;
    ``ranks`` holds the filtered ranks per direction in triple order (for error analysis).
    """

    protocol: str
    num_entities: int
    num_triples: int
    filtered: dict[str, RankingMetrics]
    raw: dict[str, RankingMetrics]
    seconds: float
    ranks: dict[str, list[float]] = field(default_factory=dict, repr=False)
    dataset: str | None = None
    split: str | None = None
    model: str | None = None

    def as_dict(self, *, with_ranks: bool = False) -> dict:
        out = {
            "dataset": self.dataset, "split": self.split, "model": self.model, "protocol": self.protocol,
            "num_entities": self.num_entities, "num_triples": self.num_triples, "seconds": round(self.seconds, 3),
            "metrics": {"filtered": {k: v.as_dict() for k, v in self.filtered.items()},
                        "raw": {k: v.as_dict() for k, v in self.raw.items()}},
        }
        if with_ranks:
            out["ranks"] = self.ranks
        return out


def protocol_text(*, ranker: str, num_entities: int, filter_splits: Sequence[str] | None,
                  reranker: str | None = None, rerank_k: int | None = None) -> str:
    filt = (f"filtered with the {'+'.join(filter_splits)} triples present on disk" if filter_splits
            else "filtered with the known triples given")
    text = (f"link prediction, {ranker} ranks all {num_entities} entities for (h, r, ?) and for (?, r, t) "
            f"via the inverse relation; {filt} (Bordes et al. 2013); ties count as the mean of the optimistic "
            f"and pessimistic rank; 'both' averages the two directions")
    if reranker:
        text += (f"; {reranker} rescores the first stage's filtered top-{rerank_k}, the rest keep first-stage "
                 f"order (raw metrics are first-stage only)")
    return text


def evaluate_ranking(
    scorer: Scorer,
    *,
    entity_ids: Sequence[str],
    triples: Sequence[TripleRecord],
    known: Iterable[TripleRecord],
    directions: Sequence[Direction] = DIRECTIONS,
    batch_size: int = 256,
    reranker: Reranker | None = None,
    rerank_k: int = 10,
    ranker: str = "the scorer",
    reranker_name: str = "a reranker",
    filter_splits: Sequence[str] | None = None,
    progress: ProgressLike | None = None,
) -> KGCResult:
    """Rank the answer of every query of ``triples`` among all ``entity_ids``, filtered and raw.

    Args:
        scorer: the first stage; called with batches of unique queries.
        entity_ids: the candidate set, in the column order of the scorer's output.
        triples: the evaluation triples.
        known: all true triples used for filtering (the evaluation triples are added).
        reranker: optional second stage over the filtered top-``rerank_k`` candidates.
        ranker / reranker_name / filter_splits: words for the protocol string.

    Raises:
        InvalidInputError: an evaluation triple names an entity outside ``entity_ids``, or the scorer
            returns a matrix of the wrong shape.
    """
    start = time.perf_counter()
    column = {e: i for i, e in enumerate(entity_ids)}
    for t in triples:
        if t.head not in column or t.tail not in column:
            raise InvalidInputError("triples", f"{t} names an entity the scorer does not rank")
    answers = answer_index([*known, *triples])
    jobs: list[tuple[Direction, Query, str]] = []
    for direction in directions:
        for t in triples:
            if direction == "tail":
                jobs.append((direction, Query(t.head, t.relation, False), t.tail))
            else:
                jobs.append((direction, Query(t.tail, t.relation, True), t.head))
    unique = list(dict.fromkeys(q for _, q, _ in jobs))
    by_query: dict[Query, list[int]] = defaultdict(list)
    for i, (_, q, _) in enumerate(jobs):
        by_query[q].append(i)
    filtered = np.zeros(len(jobs))
    raw = np.zeros(len(jobs))
    if progress is not None:
        progress.phase("ranking", len(unique))
    for b in range(0, len(unique), batch_size):
        chunk = unique[b:b + batch_size]
        scores = np.asarray(scorer(chunk), dtype=np.float64)
        if scores.shape != (len(chunk), len(entity_ids)):
            raise InvalidInputError("scorer", f"returned shape {scores.shape}, expected {(len(chunk), len(entity_ids))}")
        for row, query in zip(scores, chunk):
            known_cols = [column[a] for a in answers[query] if a in column]
            for i in by_query[query]:
                target = column[jobs[i][2]]
                raw[i] = realistic_rank(row, target)
                masked = row.copy()
                masked[[c for c in known_cols if c != target]] = -np.inf
                filtered[i] = (_reranked_rank(masked, target, query, entity_ids, reranker, rerank_k)
                               if reranker is not None else realistic_rank(masked, target))
        if progress is not None:
            progress.advance(len(chunk))
    n = len(triples)
    result_f: dict[str, RankingMetrics] = {}
    result_r: dict[str, RankingMetrics] = {}
    ranks: dict[str, list[float]] = {}
    for d_i, direction in enumerate(directions):
        sl = slice(d_i * n, (d_i + 1) * n)
        result_f[direction] = RankingMetrics.from_ranks(filtered[sl])
        result_r[direction] = RankingMetrics.from_ranks(raw[sl])
        ranks[direction] = filtered[sl].tolist()
    result_f["both"] = RankingMetrics.from_ranks(filtered)
    result_r["both"] = RankingMetrics.from_ranks(raw)
    protocol = protocol_text(ranker=ranker, num_entities=len(entity_ids), filter_splits=filter_splits,
                             reranker=reranker_name if reranker is not None else None, rerank_k=rerank_k)
    return KGCResult(protocol=protocol, num_entities=len(entity_ids), num_triples=n, filtered=result_f,
                     raw=result_r, seconds=time.perf_counter() - start, ranks=ranks)


def _reranked_rank(masked: np.ndarray, target: int, query: Query, entity_ids: Sequence[str],
                   reranker: Reranker, k: int) -> float:
    """Rank after the reranker rescored the first stage's top-k (filtered entries are ``-inf``)."""
    candidates = np.flatnonzero(np.isfinite(masked))
    order = candidates[np.argsort(-masked[candidates], kind="stable")][:k]
    if target in order:
        scores = np.asarray(reranker(query, [entity_ids[c] for c in order]), dtype=np.float64)
        if scores.shape != (len(order),):
            raise InvalidInputError("reranker", f"returned {scores.shape} scores for {len(order)} candidates")
        return realistic_rank(scores, int(np.flatnonzero(order == target)[0]))
    rest = masked.copy()
    rest[order] = -np.inf
    return len(order) + realistic_rank(rest, target)


def evaluate_split(
    scorer: Scorer,
    dataset: Dataset,
    split: str,
    *,
    entity_ids: Sequence[str] | None = None,
    **kwargs,
) -> KGCResult:
    """:func:`evaluate_ranking` on ``dataset.triples[split]``, filtered with every split on disk.

    ``entity_ids`` defaults to the dataset's entities in file order. Raises :class:`DatasetError`
    when the split is absent (WN18RR and FB15k-237 test splits are held out of the shared folder).
    """
    if split not in dataset.triples:
        raise DatasetError(f"{dataset.name} has no {split!r} split on disk (present: "
                           f"{', '.join(dataset.triples)}); pass a --data-dir that holds {split}.tsv")
    ids = list(entity_ids) if entity_ids is not None else [e.id for e in dataset.entities]
    result = evaluate_ranking(scorer, entity_ids=ids, triples=dataset.triples[split], known=dataset.all_triples(),
                              filter_splits=list(dataset.triples), **kwargs)
    result.dataset, result.split = dataset.name, split
    return result
