"""Nearest-neighbour search: exact FAISS equals a numpy scan, HNSW agrees with exact, the node
itself is excluded from its neighbours, and an index is saved beside its set and reused."""

from __future__ import annotations

import numpy as np
import pytest

from gnn.index import EXACT_MAX_ROWS, IndexCache, IndexConfig, SetIndex, VectorIndex
from gnn.store import EmbeddingSet, EmbeddingStore, NodeNotInSetError
from kg_builder.errors import InvalidInputError


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim))
    return (centres[rng.integers(0, 20, n)] + 0.5 * rng.standard_normal((n, dim))).astype(np.float32)


def cosine_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return np.argsort(-(q @ v.T), axis=1, kind="stable")[:, :k]


@pytest.fixture
def small_set() -> EmbeddingSet:
    vectors = clustered(600, 16)
    return EmbeddingSet.create("small", vectors, [f"zoo:n{i}" for i in range(600)], model="test")


def test_exact_index_matches_a_numpy_cosine_scan(small_set):
    queries = clustered(20, 16, seed=1)
    scores, rows = VectorIndex.build(small_set.vectors, IndexConfig("exact")).search(queries, 10)
    expected = cosine_top(small_set.vectors, queries, 10)
    assert (rows == expected).mean() > 0.99  # ties aside, the same order
    assert np.all(scores[:, :-1] >= scores[:, 1:] - 1e-6) and np.all(np.abs(scores) <= 1 + 1e-5)


def test_hnsw_agrees_with_exact_on_a_small_set(small_set):
    queries = clustered(50, 16, seed=2)
    _, exact = VectorIndex.build(small_set.vectors, IndexConfig("exact")).search(queries, 10)
    _, approx = VectorIndex.build(small_set.vectors, IndexConfig("hnsw", m=16, ef_search=64)).search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.95


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_similar_excludes_the_node_itself(small_set, kind):
    index = SetIndex(small_set, VectorIndex.build(small_set.vectors, IndexConfig(kind)))
    hits = index.similar("zoo:n5", k=5)
    assert len(hits) == 5 and "zoo:n5" not in [h.node_id for h in hits]
    expected = [f"zoo:n{r}" for r in cosine_top(small_set.vectors, small_set.vectors[[5]], 6)[0] if r != 5][:5]
    assert len(set(h.node_id for h in hits) & set(expected)) >= 4
    with pytest.raises(NodeNotInSetError, match="zoo:unicorn"):
        index.similar("zoo:unicorn")


def test_similar_of_a_duplicated_vector_returns_the_twin_not_itself():
    vectors = np.array([[1, 0], [1, 0], [0, 1], [-1, 0]], np.float32)
    embedding_set = EmbeddingSet.create("twins", vectors, ["a", "b", "c", "d"], model="test")
    hits = SetIndex(embedding_set, VectorIndex.build(vectors, IndexConfig("exact"))).similar("a", k=2)
    assert [h.node_id for h in hits] == ["b", "c"]
    assert hits[0].score == pytest.approx(1.0)


def test_search_checks_the_dimension_and_k(small_set):
    index = VectorIndex.build(small_set.vectors, IndexConfig("exact"))
    with pytest.raises(InvalidInputError) as info:
        index.search(np.zeros(15), 3)
    assert info.value.field == "vector" and "dimension 16" in info.value.reason
    with pytest.raises(InvalidInputError) as info:
        index.search(np.zeros(16), 0)
    assert info.value.field == "k"


def test_auto_is_exact_for_small_sets_and_hnsw_for_large():
    assert IndexConfig().resolved(EXACT_MAX_ROWS).kind == "exact"
    assert IndexConfig().resolved(EXACT_MAX_ROWS + 1).kind == "hnsw"
    with pytest.raises(InvalidInputError):
        IndexConfig("annoy")


def test_index_is_saved_beside_the_set_and_reused(tmp_path, small_set):
    store = EmbeddingStore(root=tmp_path / "embeddings")
    saved = store.save(small_set)
    config = IndexConfig("hnsw", m=8)
    first = SetIndex.open(store, saved, config)
    path = store.version_dir("small", 1) / "index-hnsw-m8-efc80.faiss"
    assert path.exists()
    stamp = path.stat().st_mtime_ns
    again = SetIndex.open(store, store.load("small"), config)
    assert path.stat().st_mtime_ns == stamp  # read, not rebuilt
    assert [h.node_id for h in again.similar("zoo:n1", 5)] == [h.node_id for h in first.similar("zoo:n1", 5)]

    cache = IndexCache(store, config)
    assert cache.get("small") is cache.get("small")
    newer = store.save(EmbeddingSet.create("small", small_set.vectors[:100], small_set.node_ids[:100], model="t"))
    assert cache.get("small").embedding_set.version == newer.version == 2
