"""The next-item objective: train item embeddings for the scorer that uses them (issue 11).

Why: :mod:`gnn.evaluate` (and a downstream model) scores the next item of a user by the
similarity between the item and a decayed mean of the user's recent items. The link-prediction
BPR loss of :func:`gnn.train.pretrain` trains user-item scores instead, with four sampled
negatives; on Scientific it *lowered* the quality of the whitened-text start (0.0736 -> 0.0584
NDCG@10 on valid after 60 batches at lr 0.001). This objective trains exactly what is scored:

* **Pairs** (built at export, :func:`sequence_pairs`): for every user's ``train`` sequence
  (ordered by ``position``, else ``timestamp``), each prefix -> the item that followed it.
  A prefix is its last ``window`` items (left-padded with ``-1``).
* **Query**: the L2-normalised ``decay ** distance``-weighted sum of the prefix items' normalised
  embeddings (the same window and decay as the evaluation scorer).
* **Loss**: softmax cross-entropy over **every item of the pair's domain** (no sampled negatives:
  Scientific has 4,385 items, Games 16,859), cosine similarity / ``temperature``; the prefix's own
  items are masked out of the softmax (they are excluded from the ranking too), the target never.

Graph propagation still shapes every item embedding: the loss is computed on the encoder's
output over the whole graph (one full-graph forward per step, :func:`gnn.sampling.full_batch`;
LightGCN on Games + Office: 0.15 GB of activations), so item-item, category and brand edges and
the users' interactions all take part.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from kg_builder.errors import InvalidInputError

#: Same window and decay as the evaluation scorer (``kg_builder.evaluation.titles``).
WINDOW = 10
DECAY = 0.7


def sequence_pairs(sequences: Iterable[list[int]], *, window: int = WINDOW) -> tuple[Tensor, Tensor]:
    """``(prefixes [N, window], targets [N])`` from item-index sequences (oldest first)."""
    if window < 1:
        raise InvalidInputError("window", f"must be >= 1, got {window}")
    prefixes: list[list[int]] = []
    targets: list[int] = []
    for items in sequences:
        for t in range(1, len(items)):
            recent = items[max(0, t - window):t]
            prefixes.append([-1] * (window - len(recent)) + recent)
            targets.append(items[t])
    if not targets:
        return torch.full((0, window), -1, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return torch.tensor(prefixes, dtype=torch.long), torch.tensor(targets, dtype=torch.long)


def decay_weights(window: int = WINDOW, decay: float = DECAY) -> Tensor:
    """``decay ** distance from the end`` for a left-padded window (the newest item weighs 1)."""
    return decay ** torch.arange(window - 1, -1, -1, dtype=torch.float32)


def next_item_loss(items: Tensor, prefixes: Tensor, targets: Tensor, *, temperature: float = 0.07,
                   decay: float = DECAY) -> Tensor:
    """Mean cross-entropy of each target among ``items`` (one domain's item embeddings ``[n, d]``;
    indices in ``prefixes`` / ``targets`` are rows of ``items``, ``-1`` is padding)."""
    if temperature <= 0:
        raise InvalidInputError("temperature", f"must be > 0, got {temperature}")
    E = F.normalize(items, dim=-1)
    present = prefixes >= 0
    rows = prefixes.clamp(min=0)
    weights = decay_weights(prefixes.shape[1], decay).to(E.dtype) * present.to(E.dtype)
    query = F.normalize((E[rows] * weights[..., None]).sum(1), dim=-1)
    logits = query @ E.T / temperature
    seen = torch.zeros_like(logits, dtype=torch.bool)
    seen.scatter_(1, rows, present)
    seen[torch.arange(len(targets)), targets] = False
    return F.cross_entropy(logits.masked_fill(seen, float("-inf")), targets)


def domain_pair_slices(domain_ptr: Tensor, targets: Tensor) -> list[tuple[int, int, np.ndarray]]:
    """For a (concatenated) graph: ``(item_start, item_end, pair indices)`` per domain that has pairs.
    A pair belongs to the domain of its target; its prefix items are in the same range."""
    ptr = domain_ptr.tolist()
    out = []
    for lo, hi in zip(ptr[:-1], ptr[1:], strict=True):
        index = np.flatnonzero(((targets >= lo) & (targets < hi)).numpy())
        if len(index):
            out.append((int(lo), int(hi), index))
    return out


__all__ = ["DECAY", "WINDOW", "decay_weights", "domain_pair_slices", "next_item_loss", "sequence_pairs"]
