"""The graph embedding set's own next-item score: the decayed-history cosine (shared by teacher and students).

An item embedding set trained by :mod:`gnn` (``gnn-<dataset>``) is evaluated, and trained, with one
scorer (:mod:`gnn.objectives`): the query after a history is the L2-normalised ``decay ** age``
weighted sum (0.7 per step) of the last 10 items' normalised vectors, and an item's score is its
cosine with the query. On the logit scale the text + graph teacher uses (cosine / 0.07) that score
is the teacher's graph half (:class:`recommender.teachers.graph_teacher.GraphFusedTeacher`) and the
students' optional graph-score term (:class:`recommender.models.base.SequentialRecommender`,
knowledge part ``graph-score:<set>``).

Shapes: ``item_seq [B, L]`` (item index + 1, right-padded with 0), ``table [n_items, g]``
-> queries ``[B, L, g]`` -> logits ``[B, L, n_items]`` (or only the selected positions).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gnn.objectives import DECAY, WINDOW

GRAPH_TEMPERATURE = 0.07
#: Weight of the graph score in a trained student's logits: 4.0, chosen on a train-only holdout that
#: neither the student nor the embedding set saw (``benchmarks/bench_graph_weight.py``: the mean
#: holdout NDCG@10 of SASRec and GRU4Rec over seeds 0-2 was 0.0949 / 0.0990 / 0.1002 / **0.1012** /
#: 0.1006 at w = 0.5 / 1 / 2 / 4 / 8). Until 2026-12-03 it was 1.0, the text + graph teacher's weight,
#: set before any measurement (the teacher's weight, chosen the same way, is 4.0 too). A student saved
#: with another weight keeps it.
GRAPH_SCORE_WEIGHT = 4.0


def decayed_prefix_queries(item_seq: Tensor, table: Tensor, *, window: int = WINDOW, decay: float = DECAY) -> Tensor:
    """``[B, L, g]``: at every position ``t`` the L2-normalised ``decay ** (t - j)``-weighted sum of the
    vectors of items ``j`` in ``(t - window, t]`` (``item_seq`` is right-padded, index + 1, 0 = pad;
    ``table`` is ``[n_items, g]``)."""
    length = item_seq.shape[1]
    steps = torch.arange(length)
    distance = steps.unsqueeze(1) - steps.unsqueeze(0)  # [t, j]
    weights = torch.where((distance >= 0) & (distance < window),
                          decay ** distance.clamp(min=0).to(table.dtype), torch.zeros((), dtype=table.dtype))
    padded = torch.cat([torch.zeros(1, table.shape[1], dtype=table.dtype), table])
    return nn.functional.normalize(torch.einsum("tj,bjd->btd", weights, padded[item_seq]), dim=-1)


def decayed_last_queries(item_seq: Tensor, item_seq_len: Tensor, table: Tensor, *, window: int = WINDOW,
                         decay: float = DECAY) -> Tensor:
    """``[B, g]``: the query of :func:`decayed_prefix_queries` after each sequence's last real item
    only (what scoring and serving need: no ``[L, L]`` work)."""
    age = (item_seq_len.view(-1, 1) - 1) - torch.arange(item_seq.shape[1]).view(1, -1)  # [B, L]
    weights = torch.where((age >= 0) & (age < window), decay ** age.clamp(min=0).to(table.dtype),
                          torch.zeros((), dtype=table.dtype))
    rows = table[(item_seq - 1).clamp(min=0)]  # padding (age < 0) has weight 0: no padded copy of the table
    return nn.functional.normalize(torch.einsum("bj,bjd->bd", weights, rows), dim=-1)


__all__ = ["GRAPH_SCORE_WEIGHT", "GRAPH_TEMPERATURE", "decayed_last_queries", "decayed_prefix_queries"]
