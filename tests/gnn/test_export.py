"""gnn.export: a tiny hand-built dataset -> HeteroData (counts, no target leaks, reverse edges,
multi-domain offsets), and the real Scientific export (skipped without the shared data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnn.export import (
    EDGE_TYPES,
    INTERACTS,
    concat_graphs,
    export_dataset,
    export_domains,
    holdout_last_train,
    reverse,
)
from kg_builder.datasets.records import Dataset, InteractionRecord, ItemLinkRecord, ItemRecord
from kg_builder.errors import InvalidInputError


def tiny_dataset(name: str = "tiny") -> Dataset:
    items = [
        ItemRecord(id="a", title="red pen", brand="Acme", categories=("Office", "Pens")),
        ItemRecord(id="b", title="blue pen", brand="Acme", categories=("Office", "Pens")),
        ItemRecord(id="c", title="stapler", brand="Bolt", categories=("Office", "Desk")),
        ItemRecord(id="d", title=None),
    ]
    seq = {"u1": ["a", "b", "c"], "u2": ["b", "c", "d"], "u3": ["c", "a"]}
    interactions = []
    for user, its in seq.items():
        for pos, item in enumerate(its):
            split = "valid" if pos == len(its) - 1 else "train"
            interactions.append(InteractionRecord(user=user, item=item, split=split, position=pos))
    interactions.append(InteractionRecord(user="u4", item="d", split="test", position=0))
    links = [ItemLinkRecord("a", "complement", "c"), ItemLinkRecord("a", "substitute", "b"),
             ItemLinkRecord("a", "complement", "zzz")]
    return Dataset(name=name, kind="rec", items=items, interactions=interactions, item_links=links)


def edge_set(data, edge_type) -> set[tuple[int, int]]:
    return set(map(tuple, data[edge_type].edge_index.t().tolist()))


def test_counts_and_no_target_leak():
    dataset = tiny_dataset()
    data = export_dataset(dataset, features=np.ones((4, 3), dtype=np.float32), domain=2)
    assert data["item"].num_nodes == 4
    assert data["user"].num_nodes == 3  # u4 has only a test interaction: not in a training graph
    assert data["category"].num_nodes == 2  # "Office > Pens", "Office > Desk"
    assert data["brand"].num_nodes == 2
    items = {i: k for k, i in enumerate(data["item"].native_id)}
    users = {u: k for k, u in enumerate(data["user"].native_id)}
    got = {(data["user"].native_id[u], data["item"].native_id[i]) for u, i in edge_set(data, INTERACTS)}
    assert got == {("u1", "a"), ("u1", "b"), ("u2", "b"), ("u2", "c"), ("u3", "c")}
    for record in dataset.interactions:  # no valid/test interaction is an edge
        if record.split != "train" and record.user in users:
            assert (users[record.user], items[record.item]) not in edge_set(data, INTERACTS)
    assert edge_set(data, ("item", "complement", "item")) == {(items["a"], items["c"])}  # unknown tail dropped
    assert edge_set(data, ("item", "substitute", "item")) == {(items["a"], items["b"])}
    assert data["item"].x.shape == (4, 3)
    assert data["user"].domain.tolist() == [2, 2, 2]


def test_every_edge_type_has_its_reverse():
    data = export_dataset(tiny_dataset())
    assert set(data.edge_types) == set(EDGE_TYPES)
    for src, rel, dst in EDGE_TYPES:
        if rel.startswith("rev_"):
            continue
        fwd = edge_set(data, (src, rel, dst))
        back = edge_set(data, reverse((src, rel, dst)))
        assert back == {(b, a) for a, b in fwd}


def test_evaluated_splits_are_refused():
    with pytest.raises(InvalidInputError) as error:
        export_dataset(tiny_dataset(), splits=("train", "valid"))
    assert error.value.field == "splits"


def test_holdout_takes_the_last_train_item_only():
    held = holdout_last_train(tiny_dataset(), fraction=1.0)
    moved = {(r.user, r.item) for r in held.interactions if r.split == "holdout"}
    assert moved == {("u1", "b"), ("u2", "c")}  # u3 has one train item: no history would remain
    data = export_dataset(held)
    items = {i: k for k, i in enumerate(data["item"].native_id)}
    users = {u: k for k, u in enumerate(data["user"].native_id)}
    assert (users["u1"], items["b"]) not in edge_set(data, INTERACTS)


def test_holdout_of_given_users_takes_exactly_their_last_train_item():
    held = holdout_last_train(tiny_dataset(), users=["u2"])
    assert {(r.user, r.item) for r in held.interactions if r.split == "holdout"} == {("u2", "c")}
    with pytest.raises(InvalidInputError) as error:  # u3 has one train item: nothing would remain
        holdout_last_train(tiny_dataset(), users=["u2", "u3"])
    assert error.value.field == "users" and "'u3'" in error.value.reason


def test_concat_offsets_ids_per_domain():
    one = export_dataset(tiny_dataset("one"), features=np.zeros((4, 2), np.float32), domain=0)
    two = export_dataset(tiny_dataset("two"), features=np.ones((4, 2), np.float32), domain=1)
    data = concat_graphs([one, two])
    assert data["item"].num_nodes == 8 and data["user"].num_nodes == 6
    assert data["item"].domain_ptr.tolist() == [0, 4, 8]
    assert data["item"].domain.tolist() == [0] * 4 + [1] * 4
    n = one[INTERACTS].edge_index.shape[1]
    second = data[INTERACTS].edge_index[:, n:]
    assert torch.equal(second, two[INTERACTS].edge_index + torch.tensor([[3], [4]]))
    assert data.domains == ["one", "two"]


class CountingEncoder:
    """Not a model: a deterministic stand-in (text length, spaces) so the cache test needs no MiniLM."""

    path = "counting-encoder"

    def __init__(self):
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        return np.array([[len(t), t.count(" ")] for t in texts], dtype=np.float32)


def test_text_features_are_cached_by_texts(tmp_path):
    from gnn.export import text_features

    dataset = tiny_dataset()
    encoder = CountingEncoder()
    first = text_features(dataset, cache_dir=tmp_path, encoder=encoder)
    assert first[:, 0].tolist() == [7, 8, 7, 0]  # "" for the item without a title
    assert len(list(tmp_path.glob("*.npy"))) == 1
    again = text_features(dataset, cache_dir=tmp_path, encoder=encoder)
    assert encoder.calls == 1 and np.array_equal(first, again)
    dataset.items[0] = ItemRecord(id="a", title="green pen")
    text_features(dataset, cache_dir=tmp_path, encoder=encoder)  # other texts: another key
    assert encoder.calls == 2 and len(list(tmp_path.glob("*.npy"))) == 2


def test_scientific_export_counts(data_dir, tmp_path, monkeypatch):
    from kg_builder.datasets import load_dataset

    dataset = load_dataset("amazon18_scientific", data_dir)
    data = export_dataset(dataset)
    assert data["item"].num_nodes == 4385
    assert data["user"].num_nodes == 8442
    valid = {(r.user, r.item) for r in dataset.interactions if r.split == "valid"}
    users = {u: k for k, u in enumerate(data["user"].native_id)}
    items = {i: k for k, i in enumerate(data["item"].native_id)}
    edges = edge_set(data, INTERACTS)
    leaked = [(u, i) for u, i in valid if (users[u], items[i]) in edges]
    # a valid target the user also bought earlier is an edge only through that train interaction
    train_pairs = {(r.user, r.item) for r in dataset.interactions if r.split == "train"}
    assert all((u, i) in train_pairs for u, i in leaked)
    assert len(edges) == len(train_pairs)
    assert data["category"].num_nodes == 767 and data["brand"].num_nodes == 1560
    assert data["item"].x.shape == (4385, 0)  # no features asked for: the test needs no encoder
