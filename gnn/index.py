"""Nearest-neighbour search over an embedding set: exact (FAISS flat) or approximate (FAISS HNSW).

Vectors are L2-normalised before indexing and queries before searching, so the inner product FAISS
ranks by is the cosine similarity, and the scores returned are cosines in [-1, 1].

- ``exact``: ``faiss.IndexFlatIP``, a brute-force scan (every query touches all n x d floats).
- ``hnsw``: ``faiss.IndexHNSWFlat`` (graph of ``m`` links per node, built with
  ``ef_construction``, searched with ``ef_search`` candidates; ``ef_search`` is passed per query
  through ``SearchParametersHNSW``, so concurrent requests never race on the index's state).

An index is built on first use and saved next to its set (``v<version>/index-hnsw-m32-efc80.faiss``),
written aside and renamed, so a later process (the API after ``kgforge embed ...``) reads it
instead of rebuilding. FAISS gives both kinds; hnswlib is not needed.

**The default (``auto``)** comes from ``benchmarks/bench_embeddings.py`` (100,000 synthetic
clustered unit vectors, 1,000 queries, k 10, 2 shared CPU cores under a load average of ~3.5; dev
numbers of one run, ``benchmarks/results/embeddings.json``; HNSW m 32, ef_construction 80,
ef_search 64; one FAISS thread per query; the API column is a real uvicorn on loopback):

- 64 dims: exact p50 / p99 0.66 / 4.9 ms in-process, 3.5 / 17.1 ms through the API; HNSW
  0.11 / 4.0 ms in-process, 2.0 / 8.6 ms through the API; recall@10 1.000 (ef_search 16: 0.98);
  HNSW build 21 s.
- 384 dims: exact 5.7 / 6.7 ms in-process, 11.4 / 13.2 ms through the API; HNSW 0.22 / 0.29 ms
  in-process, 2.7 / 3.6 ms through the API; recall@10 1.000 (ef_search 16: 0.97); build 40 s.

Ratios (noise-robust): the exact scan's in-process p50 is 5.8x HNSW's at 64 dimensions and 26x at
384; through the API (where JSON and HTTP add ~2 ms) 1.8x and 4.2x. The exact scan misses the
API's 10 ms p99 target at 100k vectors in both dimensions, HNSW meets it with recall@10 1.0 on
this data. Clustered data is much easier than uniform random unit vectors, which have no
neighbourhood structure (every point is nearly equidistant in 384 dimensions): on those
(``benchmarks/results/embeddings_uniform.json``, a more loaded run) HNSW's recall@10 at ef_search
64 is only 0.69 at 64 dimensions and 0.15 at 384 (0.87 / 0.26 at ef_search 128). Trained
embeddings are clustered, but check ``recall_at_10`` on a real set before relying on HNSW; pass
``IndexConfig("exact")`` or a larger ``ef_search`` where recall matters more than latency. An exact scan of a small set is fast and needs
no build, so ``auto`` is exact up to :data:`EXACT_MAX_ROWS` (20,000 rows, ~1/5 of the scan times
above: ~1 ms at 384 dimensions) and HNSW above it.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gnn.store import EmbeddingSet, EmbeddingStore
from kg_builder.errors import InvalidInputError

IndexKind = Literal["auto", "exact", "hnsw"]
INDEX_KINDS = ("auto", "exact", "hnsw")
EXACT_MAX_ROWS = 20_000
DEFAULT_M = 32
DEFAULT_EF_CONSTRUCTION = 80
DEFAULT_EF_SEARCH = 64
MAX_K = 1000
SINGLE_THREAD_MAX_QUERIES = 16


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """How to index a set. ``kind="auto"`` resolves by the set's size (see the module docstring)."""

    kind: IndexKind = "auto"
    m: int = DEFAULT_M
    ef_construction: int = DEFAULT_EF_CONSTRUCTION
    ef_search: int = DEFAULT_EF_SEARCH

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise InvalidInputError("kind", f"{self.kind!r} is not an index kind; use one of {', '.join(INDEX_KINDS)}")
        for field, value, low in (("m", self.m, 2), ("ef_construction", self.ef_construction, 1),
                                  ("ef_search", self.ef_search, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 4096:
                raise InvalidInputError(field, f"must be an integer in {low}..4096, got {value!r}")

    def resolved(self, rows: int) -> "IndexConfig":
        """This config with ``auto`` replaced by ``exact`` or ``hnsw`` for a set of ``rows`` vectors."""
        if self.kind != "auto":
            return self
        kind = "exact" if rows <= EXACT_MAX_ROWS else "hnsw"
        return IndexConfig(kind, self.m, self.ef_construction, self.ef_search)

    def file_name(self) -> str:
        if self.kind == "exact":
            return "index-exact.faiss"
        if self.kind == "hnsw":
            return f"index-hnsw-m{self.m}-efc{self.ef_construction}.faiss"
        raise InvalidInputError("kind", "resolve 'auto' first (IndexConfig.resolved)")


@dataclass(frozen=True, slots=True)
class Neighbour:
    node_id: str
    score: float  # cosine similarity


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32 copy; a zero row stays zero)."""
    matrix = np.array(vectors, dtype=np.float32, copy=True, ndmin=2)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.divide(matrix, norms, out=matrix, where=norms > 0)
    return matrix


class VectorIndex:
    """A FAISS index over normalised rows; :meth:`search` returns cosines and row numbers.

    Shapes:
        search(queries: [q, d] or [d], k) -> (scores [q, k] float32, rows [q, k] int64; -1 = none)
    """

    def __init__(self, index: Any, config: IndexConfig):
        if config.kind == "auto":
            raise InvalidInputError("kind", "resolve 'auto' first (IndexConfig.resolved)")
        self.index = index
        self.config = config

    @property
    def dimension(self) -> int:
        return int(self.index.d)

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def build(cls, vectors: np.ndarray, config: IndexConfig = IndexConfig()) -> "VectorIndex":
        import faiss

        matrix = normalised(vectors)
        config = config.resolved(matrix.shape[0])
        if config.kind == "exact":
            index = faiss.IndexFlatIP(matrix.shape[1])
        else:
            index = faiss.IndexHNSWFlat(matrix.shape[1], config.m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = config.ef_construction
            index.hnsw.efSearch = config.ef_search
        index.add(matrix)
        return cls(index, config)

    def save(self, path: Path) -> Path:
        """Write to ``path`` atomically (a temporary file beside it, then a rename)."""
        import faiss

        path = Path(path)
        handle, tmp = tempfile.mkstemp(prefix=".writing-", suffix=".faiss", dir=path.parent)
        os.close(handle)
        try:
            faiss.write_index(self.index, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: Path, config: IndexConfig) -> "VectorIndex":
        import faiss

        return cls(faiss.read_index(str(path)), config)

    def search(self, queries: Any, k: int, *, ef_search: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows of each query by cosine.

        Raises:
            InvalidInputError: ``vector`` of the wrong dimension or not finite; ``k`` out of range.
        """
        import faiss

        matrix = np.asarray(queries, dtype=np.float32)
        if matrix.ndim == 1:
            matrix = matrix[None, :]
        if matrix.ndim != 2 or matrix.shape[1] != self.dimension:
            got = matrix.shape[-1] if matrix.ndim >= 1 else 0
            raise InvalidInputError("vector", f"has {got} numbers; this set's vectors have dimension {self.dimension}")
        if not np.isfinite(matrix).all():
            raise InvalidInputError("vector", "holds NaN or infinite values")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
            raise InvalidInputError("k", f"must be an integer in 1..{MAX_K}, got {k!r}")
        k = min(int(k), self.size)
        if k == 0:
            return np.zeros((matrix.shape[0], 0), np.float32), np.zeros((matrix.shape[0], 0), np.int64)
        matrix = normalised(matrix)
        # A few queries run on one OpenMP thread of the calling thread (restored after): on shared
        # cores, idle OpenMP workers spinning beside the API's threads cost more than they save.
        threads = faiss.omp_get_max_threads()
        if matrix.shape[0] <= SINGLE_THREAD_MAX_QUERIES:
            faiss.omp_set_num_threads(1)
        try:
            if self.config.kind == "hnsw":
                params = faiss.SearchParametersHNSW(efSearch=max(ef_search or self.config.ef_search, k))
                return self.index.search(matrix, k, params=params)
            return self.index.search(matrix, k)
        finally:
            faiss.omp_set_num_threads(threads)


class SetIndex:
    """An embedding set with its index: search by vector, or the neighbours of one of its nodes."""

    def __init__(self, embedding_set: EmbeddingSet, index: VectorIndex):
        self.embedding_set = embedding_set
        self.index = index

    @classmethod
    def open(cls, store: EmbeddingStore, embedding_set: EmbeddingSet,
             config: IndexConfig = IndexConfig()) -> "SetIndex":
        """The saved index of this set and config, or a new one built now and saved beside the set."""
        config = config.resolved(len(embedding_set))
        folder = store.version_dir(embedding_set.name, embedding_set.version) if embedding_set.version else None
        path = folder / config.file_name() if folder is not None else None
        if path is not None and path.exists():
            index = VectorIndex.load(path, config)
            if index.size == len(embedding_set) and index.dimension == embedding_set.dimension:
                return cls(embedding_set, index)
        index = VectorIndex.build(embedding_set.vectors, config)
        if path is not None and folder.is_dir():
            index.save(path)
        return cls(embedding_set, index)

    def search(self, queries: Any, k: int = 10, *, ef_search: int | None = None,
               exclude: list[set[int]] | None = None) -> list[list[Neighbour]]:
        """For each query row, its ``k`` nearest nodes (best first), skipping rows in ``exclude[i]``."""
        extra = max((len(e) for e in exclude), default=0) if exclude else 0
        scores, rows = self.index.search(queries, min(k + extra, MAX_K) if extra else k, ef_search=ef_search)
        ids = self.embedding_set.node_ids
        out = []
        for i in range(rows.shape[0]):
            skip = exclude[i] if exclude else ()
            hits = [Neighbour(ids[r], float(s)) for s, r in zip(scores[i], rows[i]) if r >= 0 and r not in skip]
            out.append(hits[:k])
        return out

    def similar(self, node_id: str, k: int = 10, *, ef_search: int | None = None) -> list[Neighbour]:
        """The ``k`` nodes most similar to ``node_id`` (the node itself excluded).

        Raises:
            NodeNotInSetError: ``node_id`` has no vector in the set.
        """
        row = self.embedding_set.row(node_id)
        return self.search(self.embedding_set.vectors[row], k, ef_search=ef_search, exclude=[{row}])[0]


class IndexCache:
    """Opened :class:`SetIndex` objects per (set, version, config), shared by a process's requests.

    Each key is built once even when requests race (a lock per key); a new version of a set is
    picked up by the next request for its latest version.
    """

    def __init__(self, store: EmbeddingStore, config: IndexConfig = IndexConfig(), max_open: int = 4):
        self.store = store
        self.config = config
        self.max_open = max_open
        self._open: dict[tuple[str, int, IndexConfig], SetIndex] = {}
        self._locks: dict[tuple[str, int, IndexConfig], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, name: str, version: int | None = None, config: IndexConfig | None = None) -> SetIndex:
        embedding_set = self.store.load(name, version)
        key = (embedding_set.name, embedding_set.version, (config or self.config).resolved(len(embedding_set)))
        with self._lock:
            found = self._open.get(key)
            if found is not None and found.embedding_set is embedding_set:
                return found
            key_lock = self._locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                found = self._open.get(key)
                if found is not None and found.embedding_set is embedding_set:
                    return found
            opened = SetIndex.open(self.store, embedding_set, key[2])
            with self._lock:
                self._open[key] = opened
                while len(self._open) > self.max_open:
                    self._open.pop(next(iter(self._open)))
        return opened


__all__ = ["EXACT_MAX_ROWS", "IndexCache", "IndexConfig", "Neighbour", "SetIndex", "VectorIndex", "normalised"]
