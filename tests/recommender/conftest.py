"""Tiny synthetic sequence data built by the tests (no real dataset, no network)."""

from __future__ import annotations

import numpy as np
import pytest

from kg_builder.datasets.records import Dataset, InteractionRecord, ItemRecord
from recommender.data import RecData

N_ITEMS = 40


def cyclic_data(n_users: int = 120, n_items: int = N_ITEMS, seed: int = 0) -> tuple[RecData, list[list[int]]]:
    """Users walk the items in a fixed cycle (next = (i + 1) mod n) from random starts: a
    deterministic next-item pattern a sequential model must learn. Returns the data (train
    sequences = all but the last item) and every user's full sequence."""
    rng = np.random.default_rng(seed)
    items = [ItemRecord(id=str(i), title=f"item {i}") for i in range(n_items)]
    sequences, interactions = [], []
    train: dict[str, list[int]] = {}
    for u in range(n_users):
        start, length = int(rng.integers(n_items)), int(rng.integers(4, 9))
        sequence = [(start + j) % n_items for j in range(length)]
        sequences.append(sequence)
        user = f"u{u:03d}"
        train[user] = sequence[:-1]
        for position, item in enumerate(sequence):
            split = "valid" if position == length - 1 else "train"
            interactions.append(InteractionRecord(user=user, item=str(item), split=split, position=position))
    dataset = Dataset(name="synthetic", kind="rec", items=items, interactions=interactions)
    return RecData(dataset=dataset, item_ids=[it.id for it in items], train=train), sequences


@pytest.fixture
def cyclic():
    return cyclic_data()
