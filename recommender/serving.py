"""Serving saved students (``POST /v1/recommendations``): loaded once per process, answered from
precomputed item vectors.

* :class:`ServedModel` wraps a :class:`~recommender.store.SavedRecommender`. At load it computes
  the student's final item representations once (``item_embeddings()``: ID embedding plus the
  projected knowledge vector, ``[n_items, d]``), so a request costs one sequence encoding (the
  history's last ``max_len`` items, no padding) and one matrix-vector product with that table,
  then a top-k (a student with the graph-score term keeps its weighted graph vectors beside the
  table and appends the history's graph query to the sequence encoding: still one product). Its
  answers equal :func:`recommender.recommend.recommend` (tested). Anything in the
  student registry with ``hidden`` and ``item_embeddings`` is served so, the text teacher too
  (its scores then lack the temperature; the ranking is the same).
* :class:`ModelCache` holds the served models of one process, keyed by ``(name, version)``; two
  requests that miss at once load the model once. "The latest version" and "the default model"
  are looked up again at most every ``refresh_s`` (5 s), so a newly trained version is served
  within seconds without a restart; every version already loaded stays cached (a handful of
  students is a few MB each).
* **Default model**: ``KGFORGE_REC_MODEL`` (``name`` or ``name:version``), else the most recently
  created saved recommender. With none saved, :class:`NoRecommenderError` (the API's 409) names the
  ``kgforge rec train`` command.
* **Users**: a user's history is every item of theirs in the model's dataset under
  ``KGFORGE_DATA_DIR`` (train items by position, then valid, then test: what ``kgforge rec
  recommend --user`` uses), read once per process and dataset (:class:`UserHistories`). A user the
  dataset does not know is :class:`UnknownUserError` (404 naming ``user_id``) unless the request
  also gives an item ``history``: then that history answers (cold start). For a known user the
  stored history is used and a given ``history`` is only the fallback. A dataset that is not on
  this server is a :class:`~kg_builder.errors.ConfigError` (503) naming ``KGFORGE_DATA_DIR``.
* **One intra-op thread per request.** The thread that answers sets ``torch.set_num_threads(1)``
  (with torch's OpenMP build this is the calling thread's own setting: the API's worker threads,
  not the rest of the process). One sequence is far too small to split, and on a busy 2-core
  machine OpenMP's two-thread regions waited for a free core on every op: 380 ms per request
  against 0.45 ms on one thread (measured on the Scientific SASRec).
* A history item the model does not know is an :class:`~kg_builder.errors.InvalidInputError` on
  ``history`` naming the items (422). Seen items are excluded by default (as in evaluation).

Example::

    cache = ModelCache(RecommenderStore(settings), settings)
    served = cache.get()                      # the default model
    served.top_k(["12", "40", "7"], k=10)     # -> (["913", ...], [7.21, ...])
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from kg_builder.errors import ConfigError, DatasetError, InvalidInputError, KGForgeError
from kg_builder.settings import Settings

from .models.base import ITEM_SEQ, ITEM_SEQ_LEN
from .store import RecommenderNotFoundError, RecommenderStore, SavedRecommender

MAX_REPORTED_UNKNOWN = 20
SERVE_THREADS = 1
_SPLIT_ORDER = {"train": 0, "valid": 1, "test": 2}


class NoRecommenderError(KGForgeError):
    """No recommender is saved (or the configured default is missing): the message names the command."""

    def __init__(self, name: str | None = None):
        self.name = name
        if name is None:
            message = ("no recommender is saved yet; train one with `kgforge rec train --model sasrec "
                       "--data-dir DIR` (`kgforge rec list` shows the saved ones)")
        else:
            message = (f"the default recommender KGFORGE_REC_MODEL={name!r} is not saved; train it with "
                       f"`kgforge rec train --name {name.split(':')[0]}` or change KGFORGE_REC_MODEL")
        super().__init__(message)


class UnknownUserError(KGForgeError, LookupError):
    """A user the model's dataset does not know, with no item history to fall back on (404)."""

    def __init__(self, user_id: str, dataset: str):
        self.user_id, self.dataset = user_id, dataset
        super().__init__(f"user_id {user_id!r} is not a user of {dataset}; send an item `history` for a "
                         "cold-start answer")


@dataclass
class Recommendation:
    """One answer: the model that gave it and the items with scores (best first)."""

    name: str
    version: int
    model: str
    knowledge: str
    dataset: str
    items: list[str]
    scores: list[float]
    source: str  # "user" (the stored history) or "history" (the request's items)
    history_length: int


class ServedModel:
    """A saved student ready to answer: its item vectors are computed once, here."""

    def __init__(self, saved: SavedRecommender):
        self.saved = saved
        self.meta = saved.meta
        self.model = saved.model.eval()
        self.item_ids = saved.item_ids
        self.index = {item: i for i, item in enumerate(self.item_ids)}
        # a student with the graph-score term: its weighted graph vectors join the table ([n_items, d + g])
        with_term = getattr(self.model, "graph_score_vectors", None) is not None and float(self.model.graph_score_weight)
        self.graph_queries = self.model.graph_score_queries if with_term else None
        with torch.inference_mode():
            vectors = self.model.item_embeddings().detach().float()  # [n_items, d]
            if self.graph_queries is not None:
                vectors = torch.cat([vectors, self.model.graph_score_items().float()], dim=1)
            self.item_vectors = vectors.contiguous()
        self.max_len = self.model.max_len

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def version(self) -> int:
        return self.meta.version

    def rows(self, history: list[str]) -> list[int]:
        """Item indices of ``history``; unknown items are a 422 naming them (field ``history``)."""
        if not history:
            raise InvalidInputError("history", "give at least one item id")
        unknown = [item for item in dict.fromkeys(history) if item not in self.index]
        if unknown:
            shown = ", ".join(repr(i) for i in unknown[:MAX_REPORTED_UNKNOWN])
            more = f" and {len(unknown) - MAX_REPORTED_UNKNOWN} more" if len(unknown) > MAX_REPORTED_UNKNOWN else ""
            raise InvalidInputError("history", f"unknown item id(s) for {self.name} v{self.version} "
                                               f"({self.meta.dataset}): {shown}{more}")
        return [self.index[item] for item in history]

    @torch.inference_mode()
    def scores(self, rows: list[int]) -> torch.Tensor:
        """``[n_items]``: one encoding of the last ``max_len`` items, one matrix-vector product."""
        if torch.get_num_threads() != SERVE_THREADS:
            torch.set_num_threads(SERVE_THREADS)  # this thread's OpenMP setting (see the module docstring)
        recent = torch.tensor(rows[-self.max_len:], dtype=torch.long).add_(1).unsqueeze(0)
        length = torch.tensor([recent.shape[1]])
        hidden = self.model.hidden({ITEM_SEQ: recent, ITEM_SEQ_LEN: length})[0]
        if self.graph_queries is not None:
            hidden = torch.cat([hidden, self.graph_queries(recent, length)[0]])
        return self.item_vectors @ hidden

    @torch.inference_mode()
    def top_k(self, history: list[str], *, k: int = 10, exclude_seen: bool = True) -> tuple[list[str], list[float]]:
        """The ``k`` best next items after ``history`` (oldest first) and their scores."""
        if k < 1:
            raise InvalidInputError("k", f"must be >= 1, got {k}")
        rows = self.rows(history)
        scores = self.scores(rows)
        if exclude_seen:
            scores[rows] = float("-inf")
        k = min(k, len(self.item_ids) - (len(set(rows)) if exclude_seen else 0))
        if k <= 0:
            return [], []
        top = torch.topk(scores, k)
        return ([self.item_ids[i] for i in top.indices.tolist()],
                [round(float(s), 5) for s in top.values.tolist()])


class UserHistories:
    """Every user's items in one dataset (oldest first), read once from the data folder."""

    def __init__(self, dataset: str, data_dir: Path):
        from kg_builder.datasets import load_dataset

        try:
            records = load_dataset(dataset, data_dir).interactions
        except (DatasetError, FileNotFoundError, OSError) as e:
            raise ConfigError(f"the users of {dataset} are not on this server: {e}; set KGFORGE_DATA_DIR to the "
                              f"folder that holds the dataset (now {data_dir}) or send an item `history`") from e
        by_user: dict[str, list] = {}
        for record in records:
            by_user.setdefault(record.user, []).append(record)
        self.histories = {
            user: [r.item for r in sorted(rows, key=lambda r: (_SPLIT_ORDER.get(r.split, 1), r.position or 0,
                                                               r.timestamp or 0))]
            for user, rows in by_user.items()}

    def get(self, user_id: str) -> list[str] | None:
        return self.histories.get(user_id)


class ModelCache:
    """Served models of one process, keyed by ``(name, version)`` (see the module docstring)."""

    def __init__(self, store: RecommenderStore, settings: Settings, *, refresh_s: float = 5.0):
        self.store, self.settings, self.refresh_s = store, settings, refresh_s
        self._models: dict[tuple[str, int], ServedModel] = {}
        self._users: dict[str, UserHistories | ConfigError] = {}
        self._latest: dict[str | None, tuple[float, tuple[str, int]]] = {}
        self._lock = threading.Lock()
        self._load_locks: dict[tuple[str, int], threading.Lock] = {}

    # --- which model ---------------------------------------------------------------------------
    def resolve(self, name: str | None = None, version: int | None = None) -> tuple[str, int]:
        """``(name, version)`` of the model a request means. Raises RecommenderNotFoundError for a
        named model that is not saved, NoRecommenderError when none is (or the default is missing)."""
        if name is not None and version is not None:
            if version not in self._known_versions(name, version):
                raise RecommenderNotFoundError(name, version)
            return name, version
        now = time.monotonic()
        cached = self._latest.get(name)
        if cached is not None and now - cached[0] < self.refresh_s:
            return cached[1]
        resolved = self._resolve_latest(name) if name is not None else self._resolve_default()
        self._latest[name] = (now, resolved)
        return resolved

    def _known_versions(self, name: str, version: int) -> list[int]:
        if (name, version) in self._models:
            return [version]
        return self.store.versions(name)

    def _resolve_latest(self, name: str) -> tuple[str, int]:
        versions = self.store.versions(name)
        if not versions:
            raise RecommenderNotFoundError(name)
        return name, versions[-1]

    def _resolve_default(self) -> tuple[str, int]:
        configured = self.settings.rec_model
        if configured:
            name, _, version = configured.partition(":")
            version = version.lstrip("v")
            try:
                if version:
                    if not version.isdigit() or int(version) not in self.store.versions(name):
                        raise RecommenderNotFoundError(name, int(version) if version.isdigit() else None)
                    return name, int(version)
                return self._resolve_latest(name)
            except RecommenderNotFoundError:
                raise NoRecommenderError(configured) from None
            except InvalidInputError as e:  # a bad name in the setting
                raise ConfigError(f"KGFORGE_REC_MODEL={configured!r}: {e.reason}") from e
        metas = self.store.list()
        if not metas:
            raise NoRecommenderError()
        latest = max(metas, key=lambda m: (m.created, m.version))
        return latest.name, latest.version

    # --- loading -------------------------------------------------------------------------------
    def get(self, name: str | None = None, version: int | None = None) -> ServedModel:
        """The served model (loaded on first use, then from memory)."""
        key = self.resolve(name, version)
        served = self._models.get(key)
        if served is not None:
            return served
        with self._lock:
            lock = self._load_locks.setdefault(key, threading.Lock())
        with lock:
            served = self._models.get(key)
            if served is None:
                served = ServedModel(self.store.load(*key))
                self._models[key] = served
        return served

    def warm(self, name: str | None = None, version: int | None = None, *, users: bool = False) -> bool:
        """Whether a request for this model can be answered without loading anything (the model,
        and with ``users`` its dataset's users, are in memory): the API then answers on its event
        loop instead of handing the sub-millisecond work to a worker thread."""
        try:
            key = self.resolve(name, version)
        except KGForgeError:
            return False
        served = self._models.get(key)
        return served is not None and (not users or served.meta.dataset in self._users)

    def users(self, dataset: str) -> UserHistories:
        """The dataset's users, read on first use; a dataset that is not here fails the same way
        (ConfigError) every time without being read again."""
        users = self._users.get(dataset)
        if users is None:
            with self._lock:
                users = self._users.get(dataset)
                if users is None:
                    try:
                        users = UserHistories(dataset, self.settings.data_dir)
                    except ConfigError as e:
                        users = e
                    self._users[dataset] = users
        if isinstance(users, ConfigError):
            raise users
        return users

    # --- answering -----------------------------------------------------------------------------
    def recommend(self, *, user_id: str | None = None, history: list[str] | None = None, k: int = 10,
                  exclude_seen: bool = True, name: str | None = None,
                  version: int | None = None) -> Recommendation:
        """Top ``k`` for a user (their stored history) or an item history (see the module docstring)."""
        if user_id is None and not history:
            raise InvalidInputError("user_id", "give a user_id or an item history")
        served = self.get(name, version)
        if history:
            served.rows(history)  # unknown items are a 422 even when the user is known
        source, items = "history", history
        if user_id is not None:
            known = self.users(served.meta.dataset).get(user_id) if not history else self._maybe_user(served, user_id)
            if known:
                source, items = "user", known
            elif not history:
                raise UnknownUserError(user_id, served.meta.dataset)
        top, scores = served.top_k(items, k=k, exclude_seen=exclude_seen)
        return Recommendation(name=served.name, version=served.version, model=served.meta.model,
                              knowledge=served.meta.knowledge, dataset=served.meta.dataset, items=top, scores=scores,
                              source=source, history_length=len(items))

    def _maybe_user(self, served: ServedModel, user_id: str) -> list[str] | None:
        """A known user's history; with a history to fall back on, a dataset that is not on this
        server does not fail the request."""
        try:
            return self.users(served.meta.dataset).get(user_id)
        except ConfigError:
            return None


__all__ = ["ModelCache", "NoRecommenderError", "Recommendation", "ServedModel", "UnknownUserError", "UserHistories"]
