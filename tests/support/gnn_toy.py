"""A tiny recommendation set for the graph-embedding tests (tests/gnn)."""

from __future__ import annotations

import numpy as np

from kg_builder.datasets.records import Dataset, InteractionRecord, ItemLinkRecord, ItemRecord


def clustered_dataset(name: str = "toy", *, users: int = 60, items: int = 40, seed: int = 0) -> Dataset:
    """Two taste groups: even users buy from the first half of the items, odd users from the second."""
    rng = np.random.default_rng(seed)
    item_records = [ItemRecord(id=str(i), title=f"item {i}", brand=f"b{i % 3}", categories=("Root", f"c{i % 4}"))
                    for i in range(items)]
    interactions = []
    for u in range(users):
        lo = 0 if u % 2 == 0 else items // 2
        chosen = rng.choice(np.arange(lo, lo + items // 2), size=6, replace=False)
        for pos, i in enumerate(chosen):
            split = "valid" if pos == 5 else "train"
            interactions.append(InteractionRecord(user=f"u{u}", item=str(i), split=split, position=pos))
    links = [ItemLinkRecord("0", "complement", "1"), ItemLinkRecord("2", "substitute", "3")]
    return Dataset(name=name, kind="rec", items=item_records, interactions=interactions, item_links=links)
