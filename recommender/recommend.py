"""Top-k answers from a saved student (the CLI's ``kgforge rec recommend``; the API comes later).

* A history is a list of the dataset's item ids, oldest first; unknown ids are an
  :class:`~kg_builder.errors.InvalidInputError` on ``history`` naming them (the API's 422).
* Seen items are excluded by default (as in evaluation).
* ``--user``: the user's whole known history in the data directory (train items, then the valid
  item; a test item too where the loader has one), oldest first; an unknown user is an error
  naming ``user``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from kg_builder.errors import InvalidInputError

from .data import history_batch
from .models.base import to_tensors

_SPLIT_ORDER = {"train": 0, "valid": 1, "test": 2}


@torch.no_grad()
def recommend(saved, history: list[str], *, k: int = 10, exclude_seen: bool = True) -> dict[str, Any]:
    """``{"items": [...], "scores": [...]}``: the ``k`` best items after ``history``."""
    if not history:
        raise InvalidInputError("history", "give at least one item")
    if k < 1:
        raise InvalidInputError("k", f"must be >= 1, got {k}")
    index = {item: i for i, item in enumerate(saved.item_ids)}
    unknown = [item for item in history if item not in index]
    if unknown:
        raise InvalidInputError("history", f"unknown item id(s) for {saved.meta.name}: {', '.join(unknown[:20])}")
    rows = [index[item] for item in history]
    saved.model.eval()
    scores = saved.model.full_sort_predict(to_tensors(history_batch([rows], saved.model.max_len)))[0]
    if exclude_seen:
        scores[rows] = float("-inf")
    k = min(k, int(torch.isfinite(scores).sum()))
    top = torch.topk(scores, k)
    return {"items": [saved.item_ids[i] for i in top.indices.tolist()],
            "scores": [round(float(s), 5) for s in top.values]}


def user_history(dataset: str, data_dir: Path, user: str) -> list[str]:
    """All items of ``user`` in ``dataset``, oldest first (train by position, then valid, test)."""
    from kg_builder.datasets import load_dataset

    records = [r for r in load_dataset(dataset, data_dir).interactions if r.user == user]
    if not records:
        raise InvalidInputError("user", f"user {user!r} has no interactions in {dataset}; give --history instead")
    records.sort(key=lambda r: (_SPLIT_ORDER.get(r.split, 1), r.position or 0, r.timestamp or 0))
    return [r.item for r in records]


__all__ = ["recommend", "user_history"]
