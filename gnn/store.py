"""Versioned embedding sets on disk: ``KGFORGE_HOME/embeddings/<name>/v<version>/``.

A set is one matrix of node vectors with what made it: name, model, domain, version (1, 2, ... per
name), creation time, metrics, dimension, the repository's git hash and the training config. The
folder of a version holds

==========================  ==========================================================================
``vectors.safetensors``     tensor ``vectors``, float32 ``[n, d]`` (and ``text_projection`` ``[384, d]``
                            when the set records one: text search maps a MiniLM query through it)
``node_ids.json``           the ``n`` node ids, row order (``umls:virus``, ``amazon:B00TNNWMXI``)
``metadata.json``           :class:`EmbeddingSetMeta`, written last
==========================  ==========================================================================

Choices:

- **Complete or absent.** A version is written into a hidden temporary folder, ``metadata.json``
  last, and renamed into place; a folder without ``metadata.json`` (a crash mid-write) is never
  listed or loaded. Two concurrent saves of one name cannot both take a version: the rename onto
  an existing version folder fails and the loser takes the next number.
- **Versions never come back.** ``<name>/last_version`` remembers the highest version handed out,
  so deleting the latest version and saving again gives a new number (a client holding ``v3`` never
  silently gets different vectors under ``v3``).
- **safetensors** for the vectors (memory-safe, no pickle, loads as numpy); JSON for the ids and
  metadata (readable with ``jq``). Parquet is an export format (:mod:`gnn.exports`).
- Loaded sets are cached per store (keyed by version and the metadata file's mtime), so serving a
  set does not re-read 150 MB per request; :meth:`EmbeddingStore.delete` drops the cache entry.

Write-back to the graph (:func:`write_back`) stores each vector as a node property through
:meth:`GraphStore.upsert_nodes <kg_builder.graphdb.GraphStore.upsert_nodes>` (batched ``UNWIND``,
the label from :func:`kg_builder.graphdb.schema.label_for_key`).

Example::

    store = EmbeddingStore(get_settings())
    saved = store.save(EmbeddingSet.create("scientific-hgt", vectors, ids, model="hgt",
                                           domain="amazon18_scientific", metrics={"ndcg@10": 0.06}))
    store.vector("scientific-hgt", "amazon:B00TNNWMXI")  # float32 [d]
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.settings import Settings

SET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
VECTORS_FILE = "vectors.safetensors"
IDS_FILE = "node_ids.json"
METADATA_FILE = "metadata.json"
LAST_VERSION_FILE = "last_version"
WRITE_BACK_BATCH = 500
_NAME = re.compile(SET_NAME_PATTERN)
_REPO_ROOT = Path(__file__).resolve().parent.parent


class EmbeddingSetNotFoundError(KGForgeError, LookupError):
    """No embedding set (or no such version of it). The API answers 404 naming it."""

    def __init__(self, name: str, version: int | None = None):
        self.name = name
        self.version = version
        what = f"embedding set {name!r}" + (f" version {version}" if version is not None else "")
        super().__init__(f"no {what}; `kgforge embed list` shows the saved sets")


class NodeNotInSetError(KGForgeError, LookupError):
    """The set has no vector for this node. The API answers 404 naming both."""

    def __init__(self, name: str, node_id: str, version: int | None = None):
        self.name = name
        self.node_id = node_id
        self.version = version
        where = f"{name!r}" + (f" version {version}" if version is not None else "")
        super().__init__(f"node {node_id!r} is not in embedding set {where}")


class EmbeddingSetMeta(BaseModel):
    """What a set is and what made it (``metadata.json``)."""

    name: str
    model: str = Field(description="What produced the vectors: a GNN backbone name, `minilm` for text-only, ...")
    domain: str | None = Field(None, description="The dataset or domain the vectors belong to.")
    version: int = Field(0, ge=0, description="1, 2, ... per name; 0 until saved.")
    created: datetime
    dimension: int = Field(ge=1)
    count: int = Field(ge=0, description="Number of node vectors.")
    metrics: dict[str, Any] = Field(default_factory=dict)
    git_hash: str | None = Field(None, description="`git rev-parse HEAD` of the code that made the set, if known.")
    config: dict[str, Any] = Field(default_factory=dict, description="The training config.")
    text_projection: bool = Field(
        False, description="The set holds a [384, d] matrix mapping MiniLM text vectors into its space (text search).")


class EmbeddingSet:
    """Node vectors (float32 ``[n, d]``), their node ids and :class:`EmbeddingSetMeta`.

    Shapes:
        vectors: [n, d] float32; ids: n distinct strings; text_projection: [384, d] float32 or None
    """

    def __init__(self, meta: EmbeddingSetMeta, node_ids: Sequence[str], vectors: np.ndarray,
                 text_projection: np.ndarray | None = None):
        self.meta = meta
        self.node_ids = list(node_ids)
        self.vectors = vectors
        self.text_projection = text_projection
        self._rows: dict[str, int] | None = None

    @classmethod
    def create(cls, name: str, vectors: Any, node_ids: Sequence[str], *, model: str, domain: str | None = None,
               metrics: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None,
               text_projection: Any = None, git_hash: str | None = None) -> "EmbeddingSet":
        """A new (unsaved) set, checked: a valid name, distinct non-blank ids, finite vectors.

        ``vectors`` may be a numpy array or a torch tensor; it is copied to float32. ``git_hash``
        defaults to ``git rev-parse HEAD`` of this checkout (None outside a git checkout).

        Raises:
            InvalidInputError: naming ``name``, ``node_ids``, ``vectors`` or ``text_projection``.
        """
        check_set_name(name)
        matrix = _float_matrix(vectors, "vectors")
        ids = _check_ids(node_ids, matrix.shape[0])
        projection = None
        if text_projection is not None:
            projection = _float_matrix(text_projection, "text_projection")
            if projection.shape[1] != matrix.shape[1]:
                raise InvalidInputError("text_projection", f"must map into the set's dimension {matrix.shape[1]}, "
                                                           f"has {projection.shape[1]} columns")
        meta = EmbeddingSetMeta(
            name=name, model=model, domain=domain, created=datetime.now(timezone.utc),
            dimension=matrix.shape[1], count=matrix.shape[0], metrics=_json_safe(dict(metrics or {})),
            git_hash=git_hash if git_hash is not None else repository_git_hash(),
            config=_json_safe(dict(config or {})), text_projection=projection is not None,
        )
        return cls(meta, ids, matrix, projection)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def version(self) -> int:
        return self.meta.version

    @property
    def dimension(self) -> int:
        return self.meta.dimension

    def __len__(self) -> int:
        return len(self.node_ids)

    def row(self, node_id: str) -> int:
        """The row of ``node_id``. Raises :class:`NodeNotInSetError`."""
        if self._rows is None:
            self._rows = {node: i for i, node in enumerate(self.node_ids)}
        try:
            return self._rows[node_id]
        except KeyError:
            raise NodeNotInSetError(self.name, node_id, self.version or None) from None

    def vector(self, node_id: str) -> np.ndarray:
        """float32 ``[d]`` (a copy). Raises :class:`NodeNotInSetError`."""
        return self.vectors[self.row(node_id)].copy()

    def rows_for(self, node_ids: Sequence[str]) -> np.ndarray:
        """Rows of ``node_ids`` in order. Raises :class:`NodeNotInSetError` naming the first unknown id."""
        return np.fromiter((self.row(node) for node in node_ids), dtype=np.int64, count=len(node_ids))


class EmbeddingStore:
    """Embedding sets under ``settings.home / "embeddings"`` (or ``root``)."""

    def __init__(self, settings: Settings | None = None, *, root: Path | None = None, cache_size: int = 4):
        if root is None:
            if settings is None:
                raise InvalidInputError("settings", "give the settings (KGFORGE_HOME) or a root folder")
            root = settings.home / "embeddings"
        self.root = Path(root)
        self._cache: dict[tuple[str, int], tuple[int, EmbeddingSet]] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()

    # --- paths ------------------------------------------------------------------------------
    def set_dir(self, name: str) -> Path:
        return self.root / check_set_name(name)

    def version_dir(self, name: str, version: int) -> Path:
        return self.set_dir(name) / f"v{version}"

    def versions(self, name: str) -> list[int]:
        """The complete versions of ``name``, ascending (empty when there is none)."""
        folder = self.set_dir(name)
        if not folder.is_dir():
            return []
        found = []
        for entry in os.scandir(folder):
            if entry.is_dir() and re.fullmatch(r"v[1-9][0-9]*", entry.name) and \
                    os.path.exists(os.path.join(entry.path, METADATA_FILE)):
                found.append(int(entry.name[1:]))
        return sorted(found)

    def latest_version(self, name: str) -> int:
        """Raises :class:`EmbeddingSetNotFoundError` when ``name`` has no complete version."""
        versions = self.versions(name)
        if not versions:
            raise EmbeddingSetNotFoundError(name)
        return versions[-1]

    # --- write ------------------------------------------------------------------------------
    def save(self, embedding_set: EmbeddingSet) -> EmbeddingSet:
        """Save ``embedding_set`` as the next version of its name; returns it with that version set.

        The folder appears complete or not at all (written aside, metadata last, then renamed).
        """
        from safetensors.numpy import save_file

        folder = self.set_dir(embedding_set.name)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".writing-", dir=folder))
        try:
            tensors = {"vectors": np.ascontiguousarray(embedding_set.vectors, dtype=np.float32)}
            if embedding_set.text_projection is not None:
                tensors["text_projection"] = np.ascontiguousarray(embedding_set.text_projection, dtype=np.float32)
            save_file(tensors, str(tmp / VECTORS_FILE))
            (tmp / IDS_FILE).write_text(json.dumps(embedding_set.node_ids, ensure_ascii=False), encoding="utf-8")
            while True:
                version = self._next_version(embedding_set.name)
                meta = embedding_set.meta.model_copy(update={"version": version})
                (tmp / METADATA_FILE).write_text(meta.model_dump_json(indent=2), encoding="utf-8")
                try:
                    os.rename(tmp, folder / f"v{version}")
                except OSError:
                    if (folder / f"v{version}").exists():
                        continue  # another writer took this version: take the next
                    raise
                break
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        saved = EmbeddingSet(meta, embedding_set.node_ids, embedding_set.vectors, embedding_set.text_projection)
        return saved

    def _next_version(self, name: str) -> int:
        counter = self.set_dir(name) / LAST_VERSION_FILE
        with self._lock:
            last = max([*self.versions(name), 0])
            if counter.exists():
                try:
                    last = max(last, int(counter.read_text().strip() or 0))
                except ValueError:
                    pass  # a damaged counter: the folders still give a lower bound
            version = last + 1
            counter.write_text(f"{version}\n")
        return version

    def delete(self, name: str, version: int | None = None) -> list[int]:
        """Delete one version, or every version of ``name`` when ``version`` is None.

        Returns the versions deleted. Raises :class:`EmbeddingSetNotFoundError`.
        """
        versions = self.versions(name)
        if version is not None:
            if version not in versions:
                raise EmbeddingSetNotFoundError(name, version)
            versions = [version]
        elif not versions:
            raise EmbeddingSetNotFoundError(name)
        for one in versions:
            with self._lock:
                self._cache.pop((name, one), None)
            shutil.rmtree(self.version_dir(name, one))
        # The counter stays, so later saves never reuse a deleted version number.
        return versions

    # --- read -------------------------------------------------------------------------------
    def list(self) -> list[EmbeddingSetMeta]:
        """The metadata of every complete version of every set, by name then version."""
        if not self.root.is_dir():
            return []
        metas = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if not entry.is_dir() or not _NAME.match(entry.name):
                continue
            for version in self.versions(entry.name):
                metas.append(self.metadata(entry.name, version))
        return metas

    def metadata(self, name: str, version: int | None = None) -> EmbeddingSetMeta:
        """One version's metadata (the latest by default) without reading the vectors."""
        version = self.latest_version(name) if version is None else version
        path = self.version_dir(name, version) / METADATA_FILE
        if not path.exists():
            raise EmbeddingSetNotFoundError(name, version)
        return EmbeddingSetMeta.model_validate_json(path.read_text(encoding="utf-8"))

    def load(self, name: str, version: int | None = None) -> EmbeddingSet:
        """The set ``name`` at ``version`` (default: the latest).

        Raises:
            EmbeddingSetNotFoundError: no such set or version.
        """
        version = self.latest_version(name) if version is None else version
        folder = self.version_dir(name, version)
        try:
            stamp = (folder / METADATA_FILE).stat().st_mtime_ns
        except FileNotFoundError:
            raise EmbeddingSetNotFoundError(name, version) from None
        with self._lock:
            cached = self._cache.get((name, version))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        loaded = self._read(folder)
        with self._lock:
            self._cache[(name, version)] = (stamp, loaded)
            while len(self._cache) > self._cache_size:
                self._cache.pop(next(iter(self._cache)))
        return loaded

    def _read(self, folder: Path) -> EmbeddingSet:
        from safetensors.numpy import load_file

        meta = EmbeddingSetMeta.model_validate_json((folder / METADATA_FILE).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / VECTORS_FILE))
        ids = json.loads((folder / IDS_FILE).read_text(encoding="utf-8"))
        vectors = tensors["vectors"]
        if vectors.shape != (meta.count, meta.dimension) or len(ids) != meta.count:
            raise KGForgeError(f"embedding set folder {folder} is inconsistent: vectors {vectors.shape}, "
                               f"{len(ids)} ids, metadata says [{meta.count}, {meta.dimension}]; delete and re-save it")
        return EmbeddingSet(meta, ids, vectors, tensors.get("text_projection"))

    def vector(self, name: str, node_id: str, version: int | None = None) -> np.ndarray:
        """float32 ``[d]``. Raises :class:`EmbeddingSetNotFoundError` or :class:`NodeNotInSetError`."""
        return self.load(name, version).vector(node_id)

    def vectors(self, name: str, node_ids: Sequence[str], version: int | None = None) -> np.ndarray:
        """float32 ``[len(node_ids), d]`` in the order given. Raises like :meth:`vector`."""
        embedding_set = self.load(name, version)
        return embedding_set.vectors[embedding_set.rows_for(node_ids)]


def write_back(graph: Any, embedding_set: EmbeddingSet, *, property_name: str | None = None,
               batch_size: int = WRITE_BACK_BATCH, label_for: Callable[[str], str] | None = None,
               progress: Callable[[int], None] | None = None) -> int:
    """Write each vector to its graph node as a list property; returns the nodes written.

    The property is ``embedding_<set name>`` by default (dots and dashes become ``_``); nodes are
    matched by (label, id) with the label from :func:`kg_builder.graphdb.schema.label_for_key`, and a
    node that is not in the graph is skipped, never created (``GraphStore.set_node_properties``).
    Values go as ``$rows`` parameters in ``UNWIND`` batches of ``batch_size`` nodes; no id or value
    ever becomes Cypher text, and the property name passes the store's property check.

    Args:
        graph: a :class:`kg_builder.graphdb.GraphStore`.
        progress: called with the number of nodes after each batch.
    """
    from kg_builder.graphdb import schema

    prop = property_name or "embedding_" + re.sub(r"[^A-Za-z0-9_]", "_", embedding_set.name)
    label_of = label_for or schema.label_for_key
    written = 0
    for start in range(0, len(embedding_set), batch_size):
        stop = min(start + batch_size, len(embedding_set))
        by_label: dict[str, list[tuple[str, dict[str, list[float]]]]] = {}
        for i, node in zip(range(start, stop), embedding_set.node_ids[start:stop]):
            by_label.setdefault(label_of(node), []).append((node, {prop: [float(v) for v in embedding_set.vectors[i]]}))
        written += sum(graph.set_node_properties(label, rows) for label, rows in by_label.items())
        if progress:
            progress(stop - start)
    return written


def check_set_name(name: str) -> str:
    """``name`` when it is a valid set name (a folder name: letters, digits, ``_ . -``, up to 100)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError("name", f"{name!r} is not a valid embedding set name: letters, digits, '_', '.' "
                                        "and '-', starting with a letter or digit, at most 100 characters")
    return name


def repository_git_hash(path: Path = _REPO_ROOT) -> str | None:
    """``git rev-parse HEAD`` of the checkout holding kgforge, or None (no git, not a checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    value = out.stdout.strip()
    return value if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", value) else None


def _float_matrix(value: Any, field: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        matrix = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(field, f"must be a numeric matrix: {e}") from e
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise InvalidInputError(field, f"must be a 2-D matrix [n, d] with d >= 1, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise InvalidInputError(field, "holds NaN or infinite values")
    return np.ascontiguousarray(matrix)


def _check_ids(node_ids: Iterable[str], rows: int) -> list[str]:
    ids = list(node_ids)
    if len(ids) != rows:
        raise InvalidInputError("node_ids", f"{len(ids)} ids for {rows} vector rows")
    seen: set[str] = set()
    for node in ids:
        if not isinstance(node, str) or not node.strip() or any(c in node for c in "\t\r\n"):
            raise InvalidInputError("node_ids", f"{node!r} is not a node id (a non-blank string without tabs "
                                                "or line breaks)")
        if node in seen:
            raise InvalidInputError("node_ids", f"{node!r} appears twice")
        seen.add(node)
    return ids


def _json_safe(value: Any) -> Any:
    """Config and metrics as plain JSON (paths and other objects as strings, NaN as None)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (np.floating, np.integer)):
        return _json_safe(value.item())
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json_safe(v) for v in value]
    return str(value)


__all__ = [
    "EmbeddingSet", "EmbeddingSetMeta", "EmbeddingSetNotFoundError", "EmbeddingStore", "NodeNotInSetError",
    "check_set_name", "repository_git_hash", "write_back",
]
