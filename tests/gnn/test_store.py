"""The embedding store: round trips, versions, deletion, typed errors, write-back to the graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gnn.store import (
    EmbeddingSet,
    EmbeddingSetNotFoundError,
    EmbeddingStore,
    NodeNotInSetError,
    repository_git_hash,
    write_back,
)
from kg_builder.errors import InvalidInputError
from kg_builder.settings import Settings

IDS = ["zoo:cat", "zoo:dog", "amazon:B00TNNWMXI", "zoo:item:7", "weird/id with space"]


def make_set(name: str = "zoo-test", seed: int = 0, dim: int = 8, **kwargs) -> EmbeddingSet:
    vectors = np.random.default_rng(seed).standard_normal((len(IDS), dim)).astype(np.float32)
    return EmbeddingSet.create(name, vectors, IDS, model="hgt", domain="zoo",
                               metrics={"ndcg@10": 0.061, "hr@10": np.float64(0.12)},
                               config={"lr": 1e-3, "data_dir": Path("/data"), "layers": [64, 64]}, **kwargs)


@pytest.fixture
def embedding_store(tmp_path) -> EmbeddingStore:
    return EmbeddingStore(Settings(home=tmp_path / "home"))


def test_save_load_round_trip_is_identical(embedding_store, tmp_path):
    original = make_set(text_projection=np.random.default_rng(1).standard_normal((384, 8)))
    saved = embedding_store.save(original)
    assert saved.version == 1
    assert (tmp_path / "home" / "embeddings" / "zoo-test" / "v1" / "metadata.json").exists()

    loaded = EmbeddingStore(Settings(home=tmp_path / "home")).load("zoo-test")  # a fresh store: no cache
    assert loaded.node_ids == IDS
    assert loaded.vectors.dtype == np.float32
    np.testing.assert_array_equal(loaded.vectors, original.vectors)
    np.testing.assert_array_equal(loaded.text_projection, original.text_projection.astype(np.float32))
    assert loaded.meta == saved.meta
    assert loaded.meta.metrics == {"ndcg@10": 0.061, "hr@10": 0.12}
    assert loaded.meta.config == {"lr": 1e-3, "data_dir": "/data", "layers": [64, 64]}
    assert (loaded.meta.dimension, loaded.meta.count, loaded.meta.model, loaded.meta.domain) == (8, 5, "hgt", "zoo")
    assert loaded.meta.text_projection is True
    np.testing.assert_array_equal(embedding_store.vector("zoo-test", "weird/id with space"), original.vectors[4])
    np.testing.assert_array_equal(embedding_store.vectors("zoo-test", ["zoo:dog", "zoo:cat"]), original.vectors[[1, 0]])


def test_versions_increment_and_load_picks_latest_by_default(embedding_store):
    first = embedding_store.save(make_set(seed=0))
    second = embedding_store.save(make_set(seed=1))
    assert (first.version, second.version) == (1, 2)
    assert embedding_store.versions("zoo-test") == [1, 2]
    np.testing.assert_array_equal(embedding_store.load("zoo-test").vectors, second.vectors)
    np.testing.assert_array_equal(embedding_store.load("zoo-test", 1).vectors, first.vectors)
    assert [(m.name, m.version) for m in embedding_store.list()] == [("zoo-test", 1), ("zoo-test", 2)]


def test_delete_one_version_then_all_and_numbers_are_not_reused(embedding_store):
    for seed in range(2):
        embedding_store.save(make_set(seed=seed))
    embedding_store.load("zoo-test", 2)  # cached: deletion must drop it
    assert embedding_store.delete("zoo-test", 2) == [2]
    assert embedding_store.load("zoo-test").version == 1
    with pytest.raises(EmbeddingSetNotFoundError, match="'zoo-test' version 2"):
        embedding_store.load("zoo-test", 2)
    assert embedding_store.save(make_set(seed=5)).version == 3  # never 2 again
    assert embedding_store.delete("zoo-test") == [1, 3]
    assert embedding_store.list() == []
    with pytest.raises(EmbeddingSetNotFoundError, match="zoo-test"):
        embedding_store.load("zoo-test")
    with pytest.raises(EmbeddingSetNotFoundError):
        embedding_store.delete("zoo-test")


def test_unknown_set_and_node_raise_typed_errors_naming_them(embedding_store):
    with pytest.raises(EmbeddingSetNotFoundError, match="'nope'") as info:
        embedding_store.load("nope")
    assert info.value.name == "nope"
    embedding_store.save(make_set())
    with pytest.raises(NodeNotInSetError, match="'zoo:unicorn'.*'zoo-test'") as info:
        embedding_store.vector("zoo-test", "zoo:unicorn")
    assert info.value.node_id == "zoo:unicorn"
    with pytest.raises(NodeNotInSetError, match="zoo:unicorn"):
        embedding_store.vectors("zoo-test", ["zoo:cat", "zoo:unicorn"])


def test_a_folder_without_metadata_is_incomplete_and_ignored(embedding_store):
    embedding_store.save(make_set())
    crashed = embedding_store.set_dir("zoo-test") / "v7"
    crashed.mkdir()
    (crashed / "node_ids.json").write_text(json.dumps(IDS))
    assert embedding_store.versions("zoo-test") == [1]
    assert embedding_store.load("zoo-test").version == 1
    assert embedding_store.save(make_set()).version == 2


@pytest.mark.parametrize("kwargs, field", [
    ({"name": "../escape"}, "name"),
    ({"vectors": np.full((5, 3), np.nan)}, "vectors"),
    ({"vectors": np.zeros((4, 3))}, "node_ids"),
    ({"node_ids": ["a", "a", "b", "c", "d"]}, "node_ids"),
    ({"node_ids": ["a", "b\tc", "d", "e", "f"]}, "node_ids"),
    ({"text_projection": np.zeros((384, 2))}, "text_projection"),
])
def test_bad_input_names_the_field(kwargs, field):
    args = {"name": "ok", "vectors": np.zeros((5, 3)), "node_ids": IDS, **kwargs}
    with pytest.raises(InvalidInputError) as info:
        EmbeddingSet.create(args.pop("name"), args.pop("vectors"), args.pop("node_ids"), model="m", **args)
    assert info.value.field == field


def test_git_hash_is_recorded_in_a_checkout_and_none_outside(tmp_path):
    here = repository_git_hash()
    assert here is None or len(here) == 40
    if (Path(__file__).resolve().parents[2] / ".git").exists():
        assert make_set().meta.git_hash == here and here is not None
    assert repository_git_hash(tmp_path) is None


@pytest.mark.integration
def test_write_back_puts_vectors_on_graph_nodes_and_creates_none(store):
    from kg_builder.graphdb import NodeWrite, schema

    saved = make_set(name="zoo.v1-test")
    absent = IDS[1]  # every node but one exists
    store.upsert_nodes([NodeWrite(label=schema.label_for_key(i), id=i, name=i) for i in IDS if i != absent])
    batches = []
    written = write_back(store, saved, batch_size=2, progress=batches.append)
    assert written == len(IDS) - 1 and batches == [2, 2, 1]
    assert store.get_node(absent, schema.label_for_key(absent)) is None  # never a bare node
    item = store.get_node("amazon:B00TNNWMXI", "Item")
    entity = store.get_node("zoo:cat", "Entity")
    assert item is not None and entity is not None
    np.testing.assert_allclose(item.properties["embedding_zoo_v1_test"], saved.vectors[2], rtol=1e-6)
    np.testing.assert_allclose(entity.properties["embedding_zoo_v1_test"], saved.vectors[0], rtol=1e-6)
