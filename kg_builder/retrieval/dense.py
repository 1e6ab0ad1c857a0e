"""Dense retrieval: MiniLM embeddings of the corpus and exact cosine top-k with NumPy.

Embeddings come from :class:`~kg_builder.models.encoder.TextEncoder` (rows L2-normalised, so cosine
similarity is a dot product). Search is one matrix-vector product over all rows, exact and fast
enough up to ~100k documents (100k x 384 float32 = 150 MB, a few ms per query); beyond that an
approximate index would replace :meth:`DenseIndex.scores`, nothing else.

The encoder truncates each text to its ``max_length`` tokens (the model's own 256 by default, about
4x the encoding time of the 64 tokens used before); ``TextEncoder(max_length=64)`` builds a faster
index that reflects a document's title and first sentences only.

A saved index is a folder: ``embeddings.npy`` (float32 [n, dim]), ``ids.json`` (the document id of
each row) and ``config.json`` (kind, version, dim, encoder folder name).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from kg_builder import __version__
from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.models.encoder import TextEncoder

DENSE_KIND = "dense_index"
EMBEDDINGS_FILE = "embeddings.npy"
IDS_FILE = "ids.json"
QUERY_CACHE_SIZE = 1024


class DenseIndex:
    """Embeddings of documents, one row per document id, searched by exact cosine similarity.

    Args:
        encoder: the sentence encoder (shared; the index never changes its settings).
        batch_size: texts per encoder call (64 keeps peak memory small on CPU).

    Example:
        >>> index = DenseIndex(encoder)
        >>> index.add(["d1", "d2"], ["Aspirin relieves pain.", "Insulin lowers blood sugar."])
        >>> index.search("painkiller", k=1)[0][0]
        0
    """

    def __init__(self, encoder: TextEncoder, *, batch_size: int = 64):
        self.encoder = encoder
        self.batch_size = batch_size
        self.ids: list[str] = []
        self._rows: dict[str, int] = {}
        self.embeddings = np.zeros((0, encoder.dim), dtype=np.float32)
        # The same query text is embedded by the hybrid retriever and then by the utility reranker.
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: Sequence[str], texts: Sequence[str], *,
            progress: Callable[[int], None] | None = None) -> None:
        """Embed ``texts`` and store them under ``ids``: new ids are appended (in order), known ids
        have their row replaced. ``progress`` is called with the number of texts of each batch."""
        if len(ids) != len(texts):
            raise InvalidInputError("texts", f"{len(texts)} texts for {len(ids)} ids")
        if len(set(ids)) != len(ids):
            raise InvalidInputError("ids", "duplicate ids in one add() call")
        if not ids:
            return
        vectors = self.encoder.encode(list(texts), batch_size=self.batch_size, progress=progress)
        new = [(doc_id, row) for row, doc_id in enumerate(ids) if doc_id not in self._rows]
        for row, doc_id in enumerate(ids):
            if doc_id in self._rows:
                self.embeddings[self._rows[doc_id]] = vectors[row]
        if new:
            for doc_id, _ in new:
                self._rows[doc_id] = len(self.ids)
                self.ids.append(doc_id)
            self.embeddings = np.concatenate([self.embeddings, vectors[[row for _, row in new]]])

    @classmethod
    def from_rows(cls, encoder: TextEncoder, ids: Sequence[str], embeddings: np.ndarray, *,
                  batch_size: int = 64) -> DenseIndex:
        """An index over rows embedded already (``embeddings`` [len(ids), encoder.dim], by ``encoder``)."""
        if len(set(ids)) != len(ids):
            raise InvalidInputError("ids", "duplicate ids")
        if embeddings.shape != (len(ids), encoder.dim):
            raise InvalidInputError("embeddings", f"shape {embeddings.shape} does not match {len(ids)} ids "
                                                  f"and the encoder's dimension {encoder.dim}")
        index = cls(encoder, batch_size=batch_size)
        index.ids = list(ids)
        index._rows = {doc_id: row for row, doc_id in enumerate(index.ids)}
        index.embeddings = np.asarray(embeddings, dtype=np.float32)
        return index

    def row_of(self, doc_id: str) -> int:
        try:
            return self._rows[doc_id]
        except KeyError:
            raise InvalidInputError("doc_id", f"no embedding for {doc_id!r} in the dense index") from None

    def embed_query(self, query: str) -> np.ndarray:
        """The query's embedding (float32 [dim], L2-normalised, read-only; the last
        ``QUERY_CACHE_SIZE`` queries are cached)."""
        vector = self._query_cache.get(query)
        if vector is None:
            vector = self.encoder.encode([query])[0]
            vector.flags.writeable = False
            self._query_cache[query] = vector
            if len(self._query_cache) > QUERY_CACHE_SIZE:
                self._query_cache.popitem(last=False)
        else:
            self._query_cache.move_to_end(query)
        return vector

    def embed_queries(self, queries: Sequence[str]) -> None:
        """Embed many queries in one batched call and cache them (training retrieves hundreds of
        queries; batching is several times faster on a CPU than one call per query). At most
        ``QUERY_CACHE_SIZE`` are kept, so pass fewer at a time."""
        todo = list(dict.fromkeys(q for q in queries if q not in self._query_cache))
        if not todo:
            return
        for query, vector in zip(todo, self.encoder.encode(todo, batch_size=self.batch_size), strict=True):
            vector.flags.writeable = False
            self._query_cache[query] = vector
            if len(self._query_cache) > QUERY_CACHE_SIZE:
                self._query_cache.popitem(last=False)

    def scores(self, query: str | np.ndarray) -> np.ndarray:
        """Cosine similarity of the query (text or embedding) with every row: float32 [n]."""
        vector = self.embed_query(query) if isinstance(query, str) else np.asarray(query, dtype=np.float32)
        return self.embeddings @ vector

    def search(self, query: str | np.ndarray, k: int = 10) -> list[tuple[int, float]]:
        """The ``k`` most similar ``(row, cosine)`` pairs, best first (rows = insertion order)."""
        if k < 1:
            raise InvalidInputError("k", f"must be at least 1, got {k}")
        if not len(self):
            return []
        scores = self.scores(query)
        k = min(k, scores.size)
        top = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
        order = top[np.lexsort((top, -scores[top]))]
        return [(int(i), float(scores[i])) for i in order]

    # --- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path | str) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / EMBEDDINGS_FILE, self.embeddings)
        (directory / IDS_FILE).write_text(json.dumps(self.ids))
        meta = {"kind": DENSE_KIND, "version": __version__, "dim": int(self.embeddings.shape[1]),
                "size": len(self), "encoder": self.encoder.path.name,
                "encoder_max_length": self.encoder.max_length,
                "created": datetime.now(UTC).isoformat(timespec="seconds")}
        (directory / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        return directory

    @classmethod
    def load(cls, directory: Path | str, encoder: TextEncoder, *, batch_size: int = 64) -> DenseIndex:
        """Read a folder written by :meth:`save`; ``encoder`` must be the one that built it."""
        directory = Path(directory)
        meta_path = directory / "config.json"
        if not meta_path.exists():
            raise KGForgeError(f"no dense index in {directory} (config.json missing); "
                               "build one and save() it")
        meta = json.loads(meta_path.read_text())
        if meta.get("kind") != DENSE_KIND:
            raise KGForgeError(f"{directory} holds a {meta.get('kind')!r}, not a {DENSE_KIND!r}")
        embeddings = np.load(directory / EMBEDDINGS_FILE).astype(np.float32, copy=False)
        ids = json.loads((directory / IDS_FILE).read_text())
        if embeddings.shape != (len(ids), encoder.dim):
            raise KGForgeError(f"{directory}: embeddings {embeddings.shape} do not match {len(ids)} ids and "
                               f"the encoder's dimension {encoder.dim}; rebuild the index with this encoder")
        index = cls(encoder, batch_size=batch_size)
        index.ids = list(ids)
        index._rows = {doc_id: row for row, doc_id in enumerate(ids)}
        index.embeddings = embeddings
        return index


__all__ = ["DenseIndex"]
