"""EntityIndex: a persistent, per-domain embedding index of entity texts (MiniLM, exact cosine).

A job asks "which entities are most like S?" (the inherited knowledge, DESIGN 4.1). Embedding every
entity of the graph for each job made its cost grow with everything ever imported (a UMLS job went
from 55 s to 1,039 s once WN18RR was imported beside UMLS). The index embeds each entity once, keeps
one folder per domain, and jobs only embed S::

    index = EntityIndex.open(settings, "umls", encoder=encoder)
    index.ensure_built(store)                 # first use: embeds the domain's entities once
    index.search("virus: a small infectious agent", k=10)   # [(node id, cosine), ...]
    index.add(["kg:new-thing"], ["new thing: what a job just created"])   # after a job's writes

Layout of ``KGFORGE_HOME/index/<domain>/``: ``vectors.f32`` (raw float32 rows, L2-normalised),
``ids.jsonl`` (one JSON string per row, same order), ``meta.json`` (domain, encoder fingerprint,
dimension, whether the domain's entities were all added). Both data files are append-only; a writer
holds an exclusive ``flock`` on ``.lock`` (workers of one machine share the folder), and a reader
notices appends by the file size and reads only the new rows. A writer that died half-way leaves at
most a torn last row, which the next writer cuts off. A changed encoder (another model folder or
maximum length) makes the index stale: it is emptied and built again on the next
:meth:`ensure_built`.

Search is an exact dot product in NumPy. Measured on the dev machine (2 cores shared by several
jobs, load average about 17): 40,943 rows x 384 (WN18RR's size) take 33-57 ms per query, 200,000
rows 31-94 ms, against seconds for the rest of a job, so no ANN library is needed at the sizes of
the datasets here; a domain with millions of entities would want FAISS or hnswlib behind
:meth:`search`.

Texts are what every model reads for an entity: ``"name: description"``
(:meth:`kg_builder.pipeline.snapshot.EntityInfo.text`, :func:`entity_text` here).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kg_builder.datasets.text import name_and_description
from kg_builder.errors import InvalidInputError
from kg_builder.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from kg_builder.models.encoder import TextEncoder
    from kg_builder.graphdb import GraphStore

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_DOMAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_ENCODE_CHUNK = 2048  # texts per encoder call while building (bounds memory, gives progress)


def entity_text(name: str, description: str | None, description_chars: int = 300) -> str:
    """The text an entity is indexed under (the same as ``EntityInfo.text()``)."""
    return name_and_description(name, description, description_chars)


def index_dir(settings: Settings, domain: str) -> Path:
    """``KGFORGE_HOME/index/<domain>``; ``domain`` must be a plain name (it becomes a folder)."""
    if not isinstance(domain, str) or not _DOMAIN.match(domain) or ".." in domain:
        raise InvalidInputError("domain", f"{domain!r} is not a valid domain name (letters, digits, _ . -)")
    return settings.home / "index" / domain


def encoder_fingerprint(encoder: TextEncoder) -> str:
    """What must match for stored vectors to be comparable with new ones: model folder, length, dimension."""
    path = getattr(encoder, "path", None)
    return f"{Path(path).name if path else type(encoder).__name__}|max_length={getattr(encoder, 'max_length', '?')}" \
           f"|dim={encoder.dim}"


class EntityIndex:
    """Entity ids and their text embeddings for one domain; exact cosine search.

    Use :meth:`open` (a folder under ``KGFORGE_HOME``, shared by processes) or :meth:`in_memory`
    (nothing on disk). Instances from :meth:`open` are cached per process and folder, so a worker
    that runs many jobs loads the vectors once and then reads only what others appended.

    Args:
        domain: the domain (dataset name) whose entities the index holds.
        folder: where it lives; None keeps it in memory only.
        encoder: embeds texts (:meth:`add`, text queries); vectors may be given without one.

    Shapes:
        vectors: [len(index), dim] float32, rows L2-normalised.
    """

    _open: dict[str, EntityIndex] = {}
    _open_lock = threading.Lock()

    def __init__(self, domain: str, folder: Path | None = None, encoder: TextEncoder | None = None):
        self.domain = domain
        self.folder = folder
        self.encoder = encoder
        self.ids: list[str] = []
        self._positions: dict[str, int] = {}
        self._vectors = np.zeros((0, encoder.dim if encoder is not None else 0), np.float32)
        self._meta: dict[str, Any] = {"version": FORMAT_VERSION, "domain": domain, "built": False}
        self._ids_bytes = 0  # how much of ids.jsonl has been read
        self._ids_inode: int | None = None
        self._lock = threading.RLock()
        self.encoded_texts = 0  # texts this instance has embedded (builds and adds), for tests and logs

    # --- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings, domain: str, *, encoder: TextEncoder | None = None) -> EntityIndex:
        """The index of ``domain`` under ``settings.home`` (created empty when absent).

        With an ``encoder`` whose fingerprint differs from the stored one, the stored vectors are
        dropped (they are not comparable) and :attr:`built` becomes False.
        """
        folder = index_dir(settings, domain)
        key = str(folder)
        with cls._open_lock:
            index = cls._open.get(key)
            if index is None:
                index = cls(domain, folder, encoder)
                cls._open[key] = index
        with index._lock:
            if encoder is not None:
                index.encoder = encoder
            index._refresh()
            if encoder is not None and index._meta.get("encoder") not in (None, encoder_fingerprint(encoder)):
                with index._writing():
                    if index._meta.get("encoder") != encoder_fingerprint(encoder):
                        log.info("entity index %s was built with %s; rebuilding for %s", folder,
                                 index._meta.get("encoder"), encoder_fingerprint(encoder))
                        index._reset_files()
        return index

    @classmethod
    def in_memory(cls, domain: str, encoder: TextEncoder) -> EntityIndex:
        """An index that lives in this process only (tests; a snapshot built without settings)."""
        return cls(domain, None, encoder)

    @classmethod
    def forget_open(cls) -> None:
        """Drop the per-process cache of opened indexes (tests that delete a home)."""
        with cls._open_lock:
            cls._open.clear()

    # --- state -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._positions

    @property
    def built(self) -> bool:
        """True once every entity of the domain has been added (:meth:`ensure_built`, or an import)."""
        return bool(self._meta.get("built"))

    @property
    def dim(self) -> int:
        return int(self._vectors.shape[1]) if self._vectors.size else (
            self.encoder.dim if self.encoder is not None else int(self._meta.get("dim") or 0))

    def vectors(self) -> np.ndarray:
        """The stored vectors (a read-only view), row ``i`` for ``ids[i]``."""
        view = self._vectors.view()
        view.flags.writeable = False
        return view

    # --- search ----------------------------------------------------------------------------------
    def search(self, query: str | np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` entities nearest to ``query`` (a text, or a vector of :attr:`dim`), best first.

        Returns:
            ``(node id, cosine similarity)`` pairs; fewer than ``k`` when the index is smaller.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInputError("k", f"must be a positive integer, got {k!r}")
        with self._lock:
            self._refresh()
            if not self.ids:
                return []
            vector = self._query_vector(query)
            scores = self._vectors @ vector
            k = min(k, len(scores))
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top], kind="stable")]
            return [(self.ids[i], float(scores[i])) for i in top]

    def _query_vector(self, query: str | np.ndarray) -> np.ndarray:
        if isinstance(query, str):
            if self.encoder is None:
                raise InvalidInputError("query", "a text query needs an encoder: open the index with encoder=...")
            return self._encode([query])[0]
        vector = np.asarray(query, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self._vectors.shape[1]:
            raise InvalidInputError("query", f"vector has {vector.shape[0]} dimensions, the index {self.dim}")
        return vector

    # --- writes ----------------------------------------------------------------------------------
    def add(self, ids: Sequence[str], texts: Sequence[str]) -> int:
        """Embed and append the entities not in the index yet (ids already present are skipped).

        Call it after writing new nodes of the domain, with their ``"name: description"`` texts.

        Returns:
            The number of rows added.
        """
        if isinstance(ids, str) or isinstance(texts, str):
            raise InvalidInputError("ids", "pass lists of ids and texts, not single strings")
        ids, texts = list(ids), list(texts)
        if len(ids) != len(texts):
            raise InvalidInputError("texts", f"{len(texts)} texts for {len(ids)} ids")
        if self.encoder is None:
            raise InvalidInputError("encoder", "adding texts needs an encoder: open the index with encoder=...")
        with self._lock:
            self._refresh()
            if all(i in self._positions for i in ids):
                return 0
            with self._writing():
                fresh = self._new_rows(ids, texts)
                if not fresh:
                    return 0
                vectors = self._encode([t for _, t in fresh])
                self._append([i for i, _ in fresh], vectors)
                return len(fresh)

    def add_vectors(self, ids: Sequence[str], vectors: np.ndarray) -> int:
        """Append precomputed vectors (rows L2-normalised, from the same encoder); skips known ids."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise InvalidInputError("vectors", f"must be [{len(ids)}, dim], got {list(vectors.shape)}")
        with self._lock, self._writing():
            seen: set[str] = set()
            keep = []
            for n, node_id in enumerate(ids):
                if node_id not in self._positions and node_id not in seen:
                    seen.add(node_id)
                    keep.append(n)
            if keep:
                self._append([ids[n] for n in keep], vectors[keep])
            return len(keep)

    def ensure_built(self, store: GraphStore, *, progress: Callable[[int], None] | None = None) -> int:
        """Add every named node of the domain (its knowledge labels) that the index lacks, once (then :attr:`built`).

        Reads the domain's entities through the ``domain`` index (never other domains') and embeds
        only those missing. Returns the number of rows added (0 when already built).
        """
        with self._lock:
            self._refresh()
            if self.built:
                return 0
            with self._writing():
                if self.built:  # another process built it while we waited for the lock
                    return 0
                from kg_builder.products.domain import domain_labels

                rows = store.domain_entity_profiles(self.domain, labels=domain_labels(self.domain))
                added = self._add_texts(((r["id"], entity_text(r["name"], r.get("description"))) for r in rows),
                                        progress=progress)
                self._meta["built"] = True
                self._write_meta()
                log.info("entity index %s: %d entities embedded, %d in all", self.domain, added, len(self))
                return added

    def build_from(self, entities: Iterable[tuple[str, str]], *, progress: Callable[[int], None] | None = None) -> int:
        """Add ``(id, text)`` pairs (an import's entities) and mark the index built. Returns rows added."""
        with self._lock, self._writing():
            added = self._add_texts(entities, progress=progress)
            self._meta["built"] = True
            self._write_meta()
            return added

    def _add_texts(self, entities: Iterable[tuple[str, str]], *, progress: Callable[[int], None] | None) -> int:
        if self.encoder is None:
            raise InvalidInputError("encoder", "building needs an encoder: open the index with encoder=...")
        pairs = list(entities)
        fresh = self._new_rows([i for i, _ in pairs], [t for _, t in pairs])
        for start in range(0, len(fresh), _ENCODE_CHUNK):
            chunk = fresh[start:start + _ENCODE_CHUNK]
            self._append([i for i, _ in chunk], self._encode([t for _, t in chunk]))
            if progress is not None:
                progress(len(chunk))
        return len(fresh)

    def _new_rows(self, ids: Sequence[str], texts: Sequence[str]) -> list[tuple[str, str]]:
        seen: set[str] = set()
        fresh = []
        for node_id, text in zip(ids, texts, strict=True):
            if not isinstance(node_id, str) or not node_id:
                raise InvalidInputError("ids", f"must be non-empty strings, got {node_id!r}")
            if not isinstance(text, str):
                raise InvalidInputError("texts", f"must be strings, got {type(text).__name__} for {node_id!r}")
            if node_id in self._positions or node_id in seen:
                continue
            seen.add(node_id)
            fresh.append((node_id, text))
        return fresh

    def _encode(self, texts: list[str]) -> np.ndarray:
        assert self.encoder is not None
        self.encoded_texts += len(texts)
        return np.ascontiguousarray(self.encoder.encode(texts), dtype=np.float32)

    def _append(self, ids: list[str], vectors: np.ndarray) -> None:
        """Append rows to memory and (under the write lock) to the files."""
        if not ids:
            return
        if self._vectors.shape[0] == 0 and self._vectors.shape[1] != vectors.shape[1]:
            self._vectors = np.zeros((0, vectors.shape[1]), np.float32)
        if vectors.shape[1] != self._vectors.shape[1]:
            raise InvalidInputError("vectors", f"have {vectors.shape[1]} dimensions, the index {self._vectors.shape[1]}")
        if self.folder is not None:
            with open(self.folder / "vectors.f32", "ab") as f:
                f.write(vectors.astype(np.float32, copy=False).tobytes())
                f.flush()
                os.fsync(f.fileno())
            payload = "".join(json.dumps(i) + "\n" for i in ids).encode("utf-8")
            with open(self.folder / "ids.jsonl", "ab") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            self._ids_bytes += len(payload)
            if self._meta.get("dim") != vectors.shape[1]:
                self._meta["dim"] = int(vectors.shape[1])
                self._write_meta()
        start = len(self.ids)
        self.ids.extend(ids)
        self._positions.update((node_id, start + n) for n, node_id in enumerate(ids))
        self._vectors = np.concatenate([self._vectors, vectors]) if self._vectors.size else vectors.copy()

    # --- files -----------------------------------------------------------------------------------
    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Exclusive write access across processes (flock on ``.lock``), state refreshed inside."""
        if self.folder is None:
            yield
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                self._refresh(repair=True)
                if self.encoder is not None and self._meta.get("encoder") is None:
                    self._meta["encoder"] = encoder_fingerprint(self.encoder)
                    self._write_meta()
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write_meta(self) -> None:
        if self.folder is None:
            return
        tmp = self.folder / "meta.json.tmp"
        tmp.write_text(json.dumps(self._meta, indent=1), encoding="utf-8")
        os.replace(tmp, self.folder / "meta.json")

    def _reset_files(self) -> None:
        """Empty the index (called under the write lock)."""
        assert self.folder is not None
        for name in ("vectors.f32", "ids.jsonl"):
            (self.folder / name).unlink(missing_ok=True)
        self._meta = {"version": FORMAT_VERSION, "domain": self.domain, "built": False,
                      "encoder": encoder_fingerprint(self.encoder) if self.encoder is not None else None}
        self._write_meta()
        self._forget_rows()

    def _forget_rows(self) -> None:
        self.ids, self._positions, self._ids_bytes, self._ids_inode = [], {}, 0, None
        self._vectors = np.zeros((0, self.encoder.dim if self.encoder is not None else 0), np.float32)

    def _refresh(self, *, repair: bool = False) -> None:
        """Read what other processes appended since the last look (and, as writer, cut torn rows)."""
        if self.folder is None:
            return
        meta_path = self.folder / "meta.json"
        if meta_path.exists():
            try:
                self._meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                log.warning("entity index %s: unreadable meta.json; treating the index as not built", self.folder)
                self._meta = {"version": FORMAT_VERSION, "domain": self.domain, "built": False}
        ids_path, vec_path = self.folder / "ids.jsonl", self.folder / "vectors.f32"
        if not ids_path.exists():
            if self.ids:
                self._forget_rows()
            return
        stat = ids_path.stat()
        if self._ids_inode not in (None, stat.st_ino) or stat.st_size < self._ids_bytes:
            self._forget_rows()  # the files were replaced (a rebuild): read them again from the start
        self._ids_inode = stat.st_ino
        dim = int(self._meta.get("dim") or (self.encoder.dim if self.encoder is not None else 0))
        if stat.st_size > self._ids_bytes and dim:
            with open(ids_path, "rb") as f:
                f.seek(self._ids_bytes)
                tail = f.read()
            lines = tail[: tail.rfind(b"\n") + 1].splitlines(keepends=True)
            new_ids = [json.loads(line) for line in lines]
            rows_in_file = vec_path.stat().st_size // (4 * dim) if vec_path.exists() else 0
            usable = max(0, min(len(new_ids), rows_in_file - len(self.ids)))
            if usable:
                vectors = np.fromfile(vec_path, dtype=np.float32, count=usable * dim,
                                      offset=len(self.ids) * dim * 4).reshape(usable, dim)
                if self._vectors.shape[1] != dim:
                    self._vectors = np.zeros((0, dim), np.float32)
                start = len(self.ids)
                self.ids.extend(new_ids[:usable])
                self._positions.update((node_id, start + n) for n, node_id in enumerate(new_ids[:usable]))
                self._vectors = np.concatenate([self._vectors, vectors])
                self._ids_bytes += sum(len(line) for line in lines[:usable])
        if repair:
            self._cut_torn_rows(ids_path, vec_path, dim)

    def _cut_torn_rows(self, ids_path: Path, vec_path: Path, dim: int) -> None:
        """Truncate both files to the rows read (a writer died between or inside its appends)."""
        if ids_path.exists() and ids_path.stat().st_size != self._ids_bytes:
            log.warning("entity index %s: cutting %d bytes of a torn append", self.folder,
                        ids_path.stat().st_size - self._ids_bytes)
            os.truncate(ids_path, self._ids_bytes)
        if dim and vec_path.exists() and vec_path.stat().st_size != len(self.ids) * dim * 4:
            os.truncate(vec_path, len(self.ids) * dim * 4)


__all__ = ["EntityIndex", "encoder_fingerprint", "entity_text", "index_dir"]
