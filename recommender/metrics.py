"""Full-ranking metrics from a score matrix, with the conventions of
:func:`kg_builder.evaluation.titles.rank_metrics` (which takes item *embeddings* and builds its own
user query, so it cannot score a sequential model; ``tests/recommender/test_metrics.py`` checks that
both agree on an embedding scorer):

* every item is ranked (no sampled negatives); the user's history items are excluded (score
  ``-inf``, as RecBole does for general models; RecBole's sequential evaluator keeps them, see benchmarks/bench_rec.py); a target inside the history is a miss;
* ties count against the target (rank = number of other items scoring at least as high);
* HR@k and NDCG@k (one relevant item: ``1 / log2(rank + 2)``) averaged over users.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from kg_builder.errors import InvalidInputError
from kg_builder.evaluation.titles import Sequences

from .data import history_batch
from .models.base import to_tensors

KS = (10, 20)


class RankAccumulator:
    """Sums HR@k / NDCG@k over batches of score rows."""

    def __init__(self, ks: Sequence[int] = KS):
        self.ks = tuple(ks)
        self.users = 0
        self.hits = dict.fromkeys(self.ks, 0)
        self.ndcg = dict.fromkeys(self.ks, 0.0)

    def add(self, scores: np.ndarray, histories: Sequence[Sequence[int]], targets: np.ndarray) -> None:
        scores = np.array(scores, dtype=np.float32, copy=True)
        for row, history in enumerate(histories):
            scores[row, list(history)] = -np.inf
        target_scores = scores[np.arange(len(targets)), targets]
        ranks = (scores >= target_scores[:, None]).sum(axis=1) - 1
        ranks[np.isneginf(target_scores)] = scores.shape[1]
        for k in self.ks:
            in_top = ranks < k
            self.hits[k] += int(in_top.sum())
            self.ndcg[k] += float((1.0 / np.log2(ranks[in_top] + 2.0)).sum())
        self.users += len(targets)

    def result(self) -> dict[str, float]:
        if self.users == 0:
            raise InvalidInputError("sequences", "no user to evaluate")
        out = {}
        for k in self.ks:
            out[f"ndcg@{k}"] = self.ndcg[k] / self.users
            out[f"hr@{k}"] = self.hits[k] / self.users
        return out


def rank_scores(scores: np.ndarray, sequences: Sequences, ks: Sequence[int] = KS) -> dict[str, float]:
    """Metrics of a precomputed score matrix ``[n_users, n_items]`` (rows in ``sequences`` order)."""
    acc = RankAccumulator(ks)
    acc.add(scores, sequences.histories, np.asarray(sequences.targets))
    return acc.result()


@torch.no_grad()
def model_metrics(model, sequences: Sequences, *, ks: Sequence[int] = KS, batch_size: int = 512) -> dict[str, float]:
    """Metrics of a student's ``full_sort_predict`` (eval mode; restores the previous mode)."""
    was_training = model.training
    model.eval()
    acc = RankAccumulator(ks)
    targets = np.asarray(sequences.targets)
    # Users of similar history length share a batch (less padding); sums do not depend on order.
    order = np.argsort([min(len(h), model.max_len) for h in sequences.histories], kind="stable")
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            histories = [sequences.histories[i] for i in rows]
            batch = to_tensors(history_batch(histories, model.max_len))
            scores = model.full_sort_predict(batch).numpy()
            acc.add(scores, histories, targets[rows])
    finally:
        model.train(was_training)
    return acc.result()


__all__ = ["KS", "RankAccumulator", "model_metrics", "rank_scores"]
