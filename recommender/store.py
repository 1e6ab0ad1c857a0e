"""Saved students: ``KGFORGE_HOME/recommenders/<name>/v<version>/`` (versions 1, 2, ... per name).

==========================  ===================================================================
``model.safetensors``       every weight and buffer (the knowledge matrix and graph-score vectors too,
                            so a loaded model needs neither MiniLM nor the embedding set that made it)
``items.json``              the dataset's item ids, row = item index (what ``recommend`` answers)
``metadata.json``           :class:`RecommenderMeta`: model, constructor kwargs, knowledge spec,
                            dataset, training config, metrics, git hash, created; written last
==========================  ===================================================================

Like :mod:`gnn.store`: a version is written to a hidden temporary folder and renamed into place,
so a folder without ``metadata.json`` is never listed or loaded, and two concurrent saves cannot
take the same version. Names follow :func:`gnn.store.check_set_name` (letters, digits, ``_ . -``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field

from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.settings import Settings

from .models import get
from .models.base import SequentialRecommender

WEIGHTS_FILE = "model.safetensors"
ITEMS_FILE = "items.json"
METADATA_FILE = "metadata.json"


class RecommenderNotFoundError(KGForgeError, LookupError):
    """No saved recommender of that name (or version); the message names the command that trains it."""

    def __init__(self, name: str, version: int | None = None):
        self.name, self.version = name, version
        what = f"recommender {name!r}" + (f" version {version}" if version is not None else "")
        super().__init__(f"no saved {what}; train it with `kgforge rec train --name {name}` "
                         "(`kgforge rec list` shows the saved ones)")


class RecommenderMeta(BaseModel):
    """What a saved student is and what made it (``metadata.json``)."""

    name: str
    version: int = Field(0, ge=0)
    model: str = Field(description="Registered student name (recommender.models).")
    model_kwargs: dict[str, Any] = Field(description="Constructor arguments (without the knowledge matrix).")
    knowledge: str = Field("none", description="Knowledge spec of the item supplement (recommender.knowledge).")
    knowledge_dim: int | None = None
    dataset: str
    created: datetime
    git_hash: str | None = None
    train_config: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)

    model_config = {"protected_namespaces": ()}


class SavedRecommender:
    """A loaded student, its item ids and metadata."""

    def __init__(self, meta: RecommenderMeta, model: SequentialRecommender, item_ids: list[str]):
        self.meta, self.model, self.item_ids = meta, model, item_ids


class RecommenderStore:
    """Students under ``settings.home / "recommenders"`` (or ``root``)."""

    def __init__(self, settings: Settings | None = None, *, root: Path | None = None):
        if root is None:
            if settings is None:
                raise InvalidInputError("settings", "give the settings (KGFORGE_HOME) or a root folder")
            root = settings.home / "recommenders"
        self.root = Path(root)

    def versions(self, name: str) -> list[int]:
        from gnn.store import check_set_name

        folder = self.root / check_set_name(name)
        if not folder.is_dir():
            return []
        return sorted(int(p.name[1:]) for p in folder.iterdir()
                      if p.name.startswith("v") and p.name[1:].isdigit() and (p / METADATA_FILE).is_file())

    def save(self, name: str, model: SequentialRecommender, *, item_ids: list[str], dataset: str,
             knowledge: str = "none", train_config: dict[str, Any] | None = None,
             metrics: dict[str, Any] | None = None) -> RecommenderMeta:
        """Save a new version of ``name``; returns its metadata (with the version)."""
        from gnn.store import _json_safe, check_set_name, repository_git_hash
        from safetensors.torch import save_file

        check_set_name(name)
        if len(item_ids) != model.n_items:
            raise InvalidInputError("item_ids", f"{len(item_ids)} ids for a model of {model.n_items} items")
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        meta = RecommenderMeta(name=name, model=model.name, model_kwargs=model.config(), knowledge=knowledge,
                               knowledge_dim=model.knowledge_dim, dataset=dataset,
                               created=datetime.now(timezone.utc), git_hash=repository_git_hash(),
                               train_config=_json_safe(dict(train_config or {})),
                               metrics=_json_safe(dict(metrics or {})))
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
        try:
            state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_FILE))
            (tmp / ITEMS_FILE).write_text(json.dumps(list(item_ids)))
            while True:
                meta.version = (max(self.versions(name), default=0)) + 1
                (tmp / METADATA_FILE).write_text(meta.model_dump_json(indent=2))
                try:
                    os.rename(tmp, folder / f"v{meta.version}")
                    break
                except OSError:
                    if not (folder / f"v{meta.version}").exists():
                        raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return meta

    def load(self, name: str, version: int | None = None) -> SavedRecommender:
        """The latest (or given) version. Raises :class:`RecommenderNotFoundError`."""
        from safetensors.torch import load_file

        versions = self.versions(name)
        if not versions or (version is not None and version not in versions):
            raise RecommenderNotFoundError(name, version)
        folder = self.root / name / f"v{version or versions[-1]}"
        meta = RecommenderMeta.model_validate_json((folder / METADATA_FILE).read_text())
        state = load_file(str(folder / WEIGHTS_FILE))
        knowledge, graph_scores = state.get("knowledge"), state.get("graph_score_vectors")
        extra = {} if graph_scores is None else {"graph_scores": graph_scores.clone()}  # teachers take no graph_scores
        model = get(meta.model)(**meta.model_kwargs, knowledge=None if knowledge is None else knowledge[1:].clone(),
                                **extra)
        model.load_state_dict(state)
        model.eval()
        item_ids = json.loads((folder / ITEMS_FILE).read_text())
        return SavedRecommender(meta, model, item_ids)

    def list(self) -> list[RecommenderMeta]:
        out = []
        if not self.root.is_dir():
            return out
        for folder in sorted(self.root.iterdir()):
            if folder.is_dir() and not folder.name.startswith("."):
                for version in self.versions(folder.name):
                    path = folder / f"v{version}" / METADATA_FILE
                    out.append(RecommenderMeta.model_validate_json(path.read_text()))
        return out


def default_store() -> RecommenderStore:
    from kg_builder.settings import get_settings

    return RecommenderStore(get_settings())


__all__ = ["RecommenderMeta", "RecommenderNotFoundError", "RecommenderStore", "SavedRecommender"]
