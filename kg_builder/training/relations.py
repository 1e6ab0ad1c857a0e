"""Training entry point for the relation classifier P(r | S) (:class:`~kg_builder.models.relation_classifier.RelationClassifier`).

Labels come from the graph: entity S has relation r when S is the head of some *train* triple with
r (head direction only). Entity texts are embedded once with the frozen MiniLM; only the small head
is trained (Adam, mini-batches, binary cross-entropy with a per-relation ``pos_weight`` of
``negatives / positives`` capped at ``max_pos_weight``, because most relations are rare).

Evaluation: ``holdout_fraction`` of the entities is held out, a model is fitted on the rest and
scored on them; then the model is refitted on *all* entities (same seed and epochs) and that one is
saved. Metrics on the held-out entities, for the classifier and for a **prior baseline** that gives
every entity the same scores (the share of training entities having each relation):

* ``micro_f1`` / ``macro_f1`` at probability 0.5 (the baseline predicts the relations that more than
  half of the training entities have); macro averages over relations with a held-out positive;
* ``map`` (mean average precision) and ``recall@5`` / ``precision@5`` of the relations ranked by
  score, averaged over held-out entities that have at least one relation.

Example::

    result = train_relation_classifier(dataset=load_dataset("umls", data_dir), settings=Settings())
    result.metrics["holdout"]["classifier"]["map"], result.metrics["holdout"]["prior"]["map"]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from kg_builder.datasets import Dataset
from kg_builder.errors import InvalidInputError
from kg_builder.models.encoder import TextEncoder, encoder_path
from kg_builder.models.relation_classifier import RelationClassifier, default_model_name, entity_text
from kg_builder.models.saved import model_dir
from kg_builder.settings import Settings
from kg_builder.training.dense import TrainingError, git_hash, seed_everything
from kg_builder.training.result import ModelTrainResult

THRESHOLD = 0.5


def head_relation_labels(dataset: Dataset, relation_ids: Sequence[str]) -> np.ndarray:
    """Labels [num_entities, num_relations] (float32, 0/1): entity e has r when e heads a train triple with r."""
    entity_row = {e.id: i for i, e in enumerate(dataset.entities)}
    relation_col = {r: j for j, r in enumerate(relation_ids)}
    labels = np.zeros((len(dataset.entities), len(relation_ids)), dtype=np.float32)
    for triple in dataset.triples.get("train", ()):
        row, col = entity_row.get(triple.head), relation_col.get(triple.relation)
        if row is None or col is None:
            raise InvalidInputError("dataset", f"train triple {triple} uses an entity or relation the dataset "
                                               "does not list")
        labels[row, col] = 1.0
    return labels


def ranking_metrics(scores: np.ndarray, predicted: np.ndarray, labels: np.ndarray, *, k: int = 5) -> dict[str, Any]:
    """Multi-label metrics of one scorer on a set of entities.

    Args:
        scores: [n, num_relations] ranking scores (higher = more likely).
        predicted: [n, num_relations] 0/1 decisions (for F1).
        labels: [n, num_relations] 0/1 truth.
        k: cut-off of ``recall@k`` / ``precision@k``.

    Returns:
        ``micro_f1``, ``macro_f1`` (over relations with a positive), ``map``, ``recall@k``, ``precision@k``
        (over entities with a positive) and the counts they were averaged over.
    """
    truth = labels > 0.5
    decided = predicted > 0.5
    tp = (truth & decided).sum(axis=0).astype(np.float64)
    fp = (~truth & decided).sum(axis=0).astype(np.float64)
    fn = (truth & ~decided).sum(axis=0).astype(np.float64)
    denominator = 2 * tp.sum() + fp.sum() + fn.sum()
    micro = float(2 * tp.sum() / denominator) if denominator else 0.0
    present = truth.sum(axis=0) > 0
    per_relation = 2 * tp[present] / np.maximum(2 * tp[present] + fp[present] + fn[present], 1)
    macro = float(per_relation.mean()) if present.any() else 0.0

    aps, recalls, precisions = [], [], []
    for row_scores, row_truth in zip(scores, truth, strict=True):
        positives = int(row_truth.sum())
        if not positives:
            continue
        ranked = row_truth[np.argsort(-row_scores, kind="stable")]
        hits = np.cumsum(ranked)
        ranks = np.flatnonzero(ranked) + 1
        aps.append(float((hits[ranked] / ranks).mean()))
        recalls.append(float(ranked[:k].sum() / positives))
        precisions.append(float(ranked[:k].sum() / k))
    return {"micro_f1": micro, "macro_f1": macro, "map": float(np.mean(aps)) if aps else 0.0,
            f"recall@{k}": float(np.mean(recalls)) if recalls else 0.0,
            f"precision@{k}": float(np.mean(precisions)) if precisions else 0.0,
            "entities_ranked": len(aps), "relations_scored": int(present.sum())}


def prior_scores(train_labels: np.ndarray) -> np.ndarray:
    """The prior baseline's scores [num_relations]: share of training entities that have each relation."""
    return train_labels.mean(axis=0) if len(train_labels) else np.zeros(train_labels.shape[1], dtype=np.float32)


def _fit(model: RelationClassifier, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
         batch_size: int, weight_decay: float, max_pos_weight: float,
         on_epoch: Callable[[float], None]) -> list[float]:
    positives = y.sum(dim=0)
    pos_weight = ((len(y) - positives) / positives.clamp(min=1)).clamp(min=1.0, max=max_pos_weight)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    model.train()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(x))
        total, batches = 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            loss = loss_fn(model(x[idx]), y[idx])
            if not torch.isfinite(loss):
                raise TrainingError(f"non-finite loss in epoch {epoch}; lower lr (now {lr})")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            batches += 1
        losses.append(total / batches)
        on_epoch(losses[-1])
    model.eval()
    return losses


def train_relation_classifier(*, dataset: Dataset, settings: Settings, encoder: TextEncoder | None = None,
                              epochs: int = 60, lr: float = 1e-3, batch_size: int = 64, hidden: int = 256,
                              dropout: float = 0.1, weight_decay: float = 1e-4, max_pos_weight: float = 10.0,
                              holdout_fraction: float = 0.2, seed: int = 13, name: str | None = None,
                              progress: Callable[[int, int, float], None] | None = None,
                              encode_progress: Callable[[int], None] | None = None,
                              save: bool = True) -> ModelTrainResult:
    """Train P(r | S) on ``dataset``'s train triples, report held-out metrics against the prior, refit, save.

    Args:
        dataset: a KG with entities (names, optional descriptions) and a ``train`` split.
        settings: where the model is saved (``KGFORGE_HOME/models/<name>``) and the encoder path.
        encoder: the frozen MiniLM (default: loaded from ``settings``).
        holdout_fraction: share of entities held out for the metrics; 0 skips evaluation.
        progress: ``progress(epoch, total_epochs, loss)`` after every epoch of both fits.
        encode_progress: texts embedded per batch while the entity texts are encoded.
        save: write the model folder and ``training.json``.

    Returns:
        A :class:`ModelTrainResult` whose ``metrics["holdout"]`` holds ``classifier`` and ``prior`` metrics
        (see :func:`ranking_metrics`) and whose ``model`` is the refitted classifier.

    Raises:
        InvalidInputError: a bad argument (the field is named) or a dataset without train triples.
    """
    if not dataset.triples.get("train"):
        raise InvalidInputError("dataset", f"{dataset.name} has no train triples to learn relations from")
    if not dataset.entities or not dataset.relations:
        raise InvalidInputError("dataset", f"{dataset.name} lists no entities or no relations")
    if epochs < 1:
        raise InvalidInputError("epochs", f"must be at least 1, got {epochs}")
    if batch_size < 1:
        raise InvalidInputError("batch_size", f"must be at least 1, got {batch_size}")
    if not lr > 0:
        raise InvalidInputError("lr", f"must be positive, got {lr}")
    if max_pos_weight < 1:
        raise InvalidInputError("max_pos_weight", f"must be at least 1, got {max_pos_weight}")
    if not 0.0 <= holdout_fraction < 1.0:
        raise InvalidInputError("holdout_fraction", f"must be in [0, 1), got {holdout_fraction}")
    n = len(dataset.entities)
    n_holdout = max(1, round(holdout_fraction * n)) if holdout_fraction > 0 else 0
    if n - n_holdout < 2:
        raise InvalidInputError("holdout_fraction", f"leaves {n - n_holdout} of {n} entities to train on")

    started = time.perf_counter()
    relation_ids = [r.id for r in dataset.relations]
    labels = head_relation_labels(dataset, relation_ids)
    encoder = encoder or TextEncoder(encoder_path(settings))
    texts = [entity_text(e.name or e.id, e.description) for e in dataset.entities]
    embeddings = encoder.encode(texts, progress=encode_progress)
    encode_seconds = time.perf_counter() - started

    options = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "weight_decay": weight_decay,
               "max_pos_weight": max_pos_weight}
    architecture = {"input_dim": embeddings.shape[1], "hidden": hidden, "dropout": dropout}
    total_epochs = epochs * (2 if n_holdout else 1)
    done = 0

    def on_epoch(loss: float) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total_epochs, loss)

    x_all, y_all = torch.from_numpy(embeddings), torch.from_numpy(labels)
    metrics: dict[str, Any] = {"entities": n, "relations": len(relation_ids),
                               "mean_relations_per_entity": float(labels.sum(axis=1).mean()),
                               "entities_without_head_relation": int((labels.sum(axis=1) == 0).sum())}
    holdout_losses: list[float] = []
    if n_holdout:
        order = np.random.default_rng(seed).permutation(n)
        test, train = order[:n_holdout], order[n_holdout:]
        seed_everything(seed)
        probe = RelationClassifier(relation_ids, **architecture)
        holdout_losses = _fit(probe, x_all[train], y_all[train], on_epoch=on_epoch, **options)
        probabilities = probe.predict_embeddings(embeddings[test])
        prior = np.broadcast_to(prior_scores(labels[train]), probabilities.shape)
        metrics["holdout"] = {
            "entities": int(n_holdout),
            "classifier": ranking_metrics(probabilities, probabilities >= THRESHOLD, labels[test]),
            "prior": ranking_metrics(prior, prior > THRESHOLD, labels[test]),
        }

    seed_everything(seed)
    model = RelationClassifier(relation_ids, **architecture, meta={"dataset": dataset.name, "seed": seed})
    epoch_losses = _fit(model, x_all, y_all, on_epoch=on_epoch, **options)
    train_probabilities = model.predict_embeddings(embeddings)
    metrics["train"] = ranking_metrics(train_probabilities, train_probabilities >= THRESHOLD, labels)
    metrics["holdout_epoch_losses"] = holdout_losses

    name = name or default_model_name(dataset.name)
    config = {**options, **architecture, "holdout_fraction": holdout_fraction, "threshold": THRESHOLD,
              "encoder": str(getattr(encoder, "path", "")), "labels": "head relations of train triples"}
    result = ModelTrainResult(
        model_name=name, directory=model_dir(settings, name), dataset=dataset.name, seed=seed, config=config,
        metrics=metrics, timings={"encode_seconds": encode_seconds,
                                  "total_seconds": time.perf_counter() - started},
        epoch_losses=epoch_losses, stopped_by_budget=False, git_hash=git_hash(), model=model)
    model.meta.update({"metrics": {"holdout": metrics.get("holdout")}, "config": config,
                       "timings": result.timings})
    if save:
        model.save(result.directory)
        result.save_to_directory()
    return result


__all__ = ["head_relation_labels", "prior_scores", "ranking_metrics", "train_relation_classifier"]
