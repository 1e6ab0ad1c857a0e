"""Pretraining and fine-tuning as whole runs: export, train, save (the CLI and the training jobs).

``kgforge embed pretrain|finetune`` and the API's training jobs (Celery) both call these, so a
run started either way saves the same things:

* :func:`pretrain_sources`: the source domains as one graph (one domain id each), the encoder
  saved as a model folder ``KGFORGE_HOME/models/<name>`` (``config.json``, ``model.safetensors``,
  ``training.json``).
* :func:`finetune_target`: the target domain, starting from a pretrained encoder (or from scratch),
  **early-stopped on a train-only holdout** (the last train item of 20 % of the users, taken out
  of the training graph; :func:`gnn.export.holdout_last_train`), then the items' embeddings over
  the full train graph saved as a versioned embedding set named like the model (node ids are
  graph keys, so ``GET /v1/embeddings/<set>/<item id>`` serves them).

``progress`` receives :mod:`gnn.train`'s per-batch events plus ``{"stage": "export"}`` and
``{"stage": "save"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kg_builder.settings import Settings

if TYPE_CHECKING:
    import numpy as np

    from kg_builder.datasets import Dataset
    from kg_builder.graphdb import GraphStore

Progress = Callable[[dict[str, Any]], None]

DEFAULT_SOURCES = ("amazon18_games", "amazon14_office")
DEFAULT_MODEL = "lightgcn"
#: Budgets (batches of 1,024 next-item pairs); the dev runs behind them are in gnn.evaluate.
PRETRAIN_BATCHES = 200
FINETUNE_BATCHES = 300
HOLDOUT_FRACTION = 0.2


def _emit(progress: Progress | None, event: dict[str, Any]) -> None:
    if progress is not None:
        progress(event)


def pretrain_sources(settings: Settings, *, sources: Sequence[str] = DEFAULT_SOURCES, model: str = DEFAULT_MODEL,
                     objective: str = "next_item", max_batches: int | None = PRETRAIN_BATCHES,
                     max_minutes: float | None = None, seed: int = 0, name: str = "gnn-pretrain",
                     data_dir: Path | str | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Pretrain ``model`` on ``sources``; returns ``{"model", "directory", "metrics"}``."""
    from kg_builder.models.saved import model_dir

    from .export import export_domains
    from .train import pretrain

    _emit(progress, {"stage": "export", "datasets": list(sources)})
    data = export_domains(list(sources), data_dir=data_dir or settings.data_dir)
    result = pretrain(data, model, objective=objective, max_batches=max_batches, max_minutes=max_minutes, seed=seed,
                      progress=progress)
    _emit(progress, {"stage": "save"})
    folder = result.save_to_directory(model_dir(settings, name))
    return {"model": name, "directory": str(folder), "metrics": result.metrics}


def finetune_target(settings: Settings, *, dataset: str = "amazon18_scientific", pretrained: str | None = None,
                    model: str = DEFAULT_MODEL, max_batches: int | None = FINETUNE_BATCHES,
                    max_minutes: float | None = None, seed: int = 0, name: str | None = None,
                    early_stopping: bool = True, data_dir: Path | str | None = None,
                    progress: Progress | None = None, store: GraphStore | None = None,
                    min_confidence: float = 0.0, records: Dataset | None = None,
                    features: np.ndarray | None = None) -> dict[str, Any]:
    """Fine-tune a pretrained encoder (``pretrained``: a model name) or train ``model`` from scratch on
    ``dataset``; saves the model and the items' embedding set. With ``store``, the triples jobs wrote
    on the domain (confidence at least ``min_confidence``) join the graph as weighted edges
    (:mod:`gnn.refresh`). Returns ``{"model", "directory", "embedding_set", "version", "items",
    "metrics", "stage", "job_edges"}``. ``records`` / ``features``: the loaded dataset and its item
    features, when the caller has them (default: loaded from ``data_dir``, cached MiniLM titles)."""
    from kg_builder.datasets import load_dataset
    from kg_builder.evaluation.titles import user_sequences
    from kg_builder.ingest import DatasetKeys
    from kg_builder.models.saved import model_dir

    from .export import default_cache_dir, holdout_last_train, text_features
    from .models import GraphEncoder
    from .refresh import graph_with_job_edges
    from .store import EmbeddingSet, EmbeddingStore
    from .train import finetune, holdout_validator, item_embeddings

    name = name or f"gnn-{dataset}"
    source = GraphEncoder.load(model_dir(settings, pretrained)) if pretrained else None
    _emit(progress, {"stage": "export", "datasets": [dataset]})
    records = records if records is not None else load_dataset(dataset, data_dir or settings.data_dir)
    if features is None:
        features = text_features(records, cache_dir=default_cache_dir())
    graph, added = graph_with_job_edges(records, features, store, min_confidence=min_confidence)
    train_graph, validate = graph, None
    if early_stopping:
        held = holdout_last_train(records, fraction=HOLDOUT_FRACTION, seed=0)
        train_graph, _ = graph_with_job_edges(held, features, store, min_confidence=min_confidence)
        validate = holdout_validator(train_graph, user_sequences(held, "holdout"))
    result = finetune(source, train_graph, model_name=model, max_batches=max_batches, max_minutes=max_minutes,
                      seed=seed, validate=validate, progress=progress)
    _emit(progress, {"stage": "save"})
    folder = result.save_to_directory(model_dir(settings, name))
    keys = DatasetKeys(dataset)
    by_native = {item.id: keys.item(item) for item in records.items}
    node_ids = [by_native[str(n)] for n in graph["item"].native_id]
    saved = EmbeddingStore(settings).save(EmbeddingSet.create(
        name, item_embeddings(result.model, graph), node_ids, model=result.model.name, domain=dataset,
        metrics=result.metrics, config={**result.config, "pretrained": pretrained, "model_folder": name,
                                        "min_confidence": min_confidence, "job_edges": added["edges"],
                                        "graph_state": added["graph_state"]}))
    return {"model": name, "directory": str(folder), "embedding_set": name, "version": saved.version,
            "items": len(saved), "metrics": result.metrics, "stage": result.config["stage"],
            "job_edges": added["edges"]}


__all__ = ["DEFAULT_SOURCES", "FINETUNE_BATCHES", "PRETRAIN_BATCHES", "finetune_target", "pretrain_sources"]
