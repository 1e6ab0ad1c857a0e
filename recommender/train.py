"""Training a student: :func:`train_student` (keyword-only, returns a :class:`TrainResult`).

Choices (RecBole SASRec/GRU4Rec defaults where RecBole has one):

* Loss: cross-entropy over **all** items (RecBole ``loss_type: CE``), at every position of each
  user's training sequence (= every augmented prefix row of ``Scientific.train.inter`` once per
  epoch; see :mod:`recommender.data`).
* Adam, **lr 0.003** (RecBole's default is 0.001; on Scientific SASRec's holdout NDCG@10 after 2
  epochs was 0.030 with 0.001 and 0.043 with 0.003, 0.078 after 8: the CPU budget needs the faster
  start), no weight decay; batches of 128 user sequences (~500 next-item targets) grouped by
  length (:func:`recommender.data.length_batches`); at most **12 epochs** (SASRec ~6-8 s an epoch
  on one thread).
* **Early stopping on a train-only holdout** (:func:`recommender.data.holdout_split`: the last train
  item of 10 % of users), NDCG@10 with full ranking, checked after every epoch; patience 3; the
  best epoch's weights are kept. ``valid`` is never looked at. ``holdout_fraction=0`` trains the
  fixed number of epochs on everything.
* Seeds: ``torch.manual_seed(seed)`` and a seeded numpy generator for the batch order and the
  holdout users; one torch thread by default (``threads``) because the machine is shared.
* A loss that is NaN or infinite raises :class:`TrainingDivergedError` at once; nothing is
  returned, so nothing can be saved.
* ``extra_loss(model, interaction, loss) -> Tensor`` (optional) is added to each batch's loss:
  the hook distillation terms (DLLM2Rec, SLMRec) plug into; ``extra_modules`` are the distiller's
  own learned parts (projections), trained by the same Adam and not saved with the student;
  ``prepare(model)`` (optional) changes the student once it is built and before the optimiser is
  (REKI/KAR puts its expert adapter in place of the knowledge projection there).
* A student with the graph-score term (``graph_scores``; :mod:`recommender.models.base`) trains
  with that term's weight at 0, early stopping included, and gets ``GRAPH_SCORE_WEIGHT`` after training (late
  fusion; trained jointly it scored below the graph set alone, see the README).
* Time (seconds) and peak memory (``resource.getrusage`` max RSS, MiB) go into ``metrics``.

Example::

    data = load_rec_data("amazon18_scientific", "../shared/data")
    result = train_student(data=data, model="sasrec", knowledge=build_knowledge("text", data), seed=0)
    model_metrics(result.model, data.evaluation("valid"))
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from kg_builder.errors import InvalidInputError, TrainingDivergedError
from kg_builder.training.result import peak_rss_mib

from .data import (
    DEFAULT_MAX_LEN,
    HOLDOUT_FRACTION,
    RecData,
    holdout_split,
    length_batches,
    pad_batch,
    training_windows,
)
from .graph_score import GRAPH_SCORE_WEIGHT
from .metrics import model_metrics
from .models import get
from .models.base import SequentialRecommender, to_tensors

logger = logging.getLogger(__name__)

DEFAULT_EPOCHS = 12
DEFAULT_BATCH_SIZE = 128
DEFAULT_LR = 0.003
DEFAULT_PATIENCE = 3

ExtraLoss = Callable[[SequentialRecommender, dict[str, Tensor], Tensor], Tensor]


@dataclass
class TrainResult:
    """A trained student with what made it."""

    model: SequentialRecommender
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def train_student(*, data: RecData, model: str = "sasrec", knowledge: np.ndarray | None = None,
                  knowledge_spec: str = "none", graph_scores: np.ndarray | None = None, model_kwargs: dict[str, Any] | None = None, seed: int = 0,
                  epochs: int = DEFAULT_EPOCHS, batch_size: int = DEFAULT_BATCH_SIZE, lr: float = DEFAULT_LR,
                  weight_decay: float = 0.0, patience: int = DEFAULT_PATIENCE,
                  holdout_fraction: float = HOLDOUT_FRACTION, max_len: int = DEFAULT_MAX_LEN,
                  max_minutes: float | None = None, threads: int | None = 1,
                  extra_loss: ExtraLoss | None = None, extra_modules: Sequence[nn.Module] = (),
                  prepare: Callable[[SequentialRecommender], None] | None = None,
                  progress: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train one student on ``data.train`` (see the module docstring for every choice).

    Args:
        model: a registered student name (:func:`recommender.models.get`).
        knowledge: the fixed item matrix ``[n_items, k]`` of the supplement, or None (ID only).
        knowledge_spec: how ``knowledge`` was built (recorded in the config).
        graph_scores: optional graph vectors ``[n_items, g]`` of the student's graph-score term
            (:func:`recommender.knowledge.build_graph_scores`).
        epochs: the most epochs; early stopping may end sooner.
        max_minutes: optional wall-clock budget (checked between batches).
        threads: torch threads while training (None: leave torch's setting).
        progress: called with ``{"event": "batch"|"epoch", ...}`` dicts.

    Raises:
        InvalidInputError: a bad argument (naming it).
        TrainingDivergedError: the loss became NaN or infinite.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("max_len", max_len)):
        if value < 1:
            raise InvalidInputError(name, f"must be >= 1, got {value}")
    if not lr > 0:
        raise InvalidInputError("lr", f"must be > 0, got {lr}")
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _train(data=data, model_name=model, knowledge=knowledge, knowledge_spec=knowledge_spec,
                      graph_scores=graph_scores,
                      model_kwargs=dict(model_kwargs or {}), seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,
                      weight_decay=weight_decay, patience=patience, holdout_fraction=holdout_fraction,
                      max_len=max_len, max_minutes=max_minutes, extra_loss=extra_loss, progress=progress,
                      threads=threads, extra_modules=tuple(extra_modules), prepare=prepare)
    finally:
        torch.set_num_threads(previous_threads)


def _train(*, data, model_name, knowledge, knowledge_spec, model_kwargs, graph_scores=None, seed, epochs, batch_size, lr, weight_decay,
           patience, holdout_fraction, max_len, max_minutes, extra_loss, progress, threads, extra_modules=(),
           prepare=None) -> TrainResult:
    started = time.monotonic()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cls = get(model_name)
    student = cls(data.n_items, max_len=max_len,
                  knowledge=None if knowledge is None else torch.as_tensor(knowledge, dtype=torch.float32),
                  graph_scores=None if graph_scores is None else torch.as_tensor(graph_scores, dtype=torch.float32),
                  **model_kwargs)
    if student.graph_score_vectors is not None:  # late fusion: the network trains without the graph score
        student.graph_score_weight.zero_()
    if prepare is not None:
        prepare(student)
    split = holdout_split(data.train, fraction=holdout_fraction, seed=seed)
    windows = training_windows(split.train, max_len)
    if not windows:
        raise InvalidInputError("data", "no training sequence has two items")
    has_holdout = len(split.holdout.users) > 0
    parameters = list(student.parameters()) + [p for module in extra_modules for p in module.parameters()]
    optimiser = torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    batches = math.ceil(len(windows) / batch_size)
    history: list[dict[str, Any]] = []
    best_score, best_epoch, best_state, stale = -1.0, 0, None, 0
    stopped = "epochs"
    deadline = started + max_minutes * 60 if max_minutes else None
    epoch = 0
    for epoch in range(1, epochs + 1):
        student.train()
        total, count = 0.0, 0
        for b, indices in enumerate(length_batches(windows, batch_size, rng)):
            chunk = [windows[i] for i in indices]
            interaction = to_tensors(pad_batch(chunk, max_len))
            loss = student.calculate_loss(interaction)
            if extra_loss is not None:
                loss = loss + extra_loss(student, interaction, loss)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingDivergedError(
                    f"{model_name}: the loss became {value} at epoch {epoch}, batch {b + 1}; nothing was saved. "
                    f"Lower the learning rate (lr={lr}) or check the knowledge matrix.")
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += value
            count += 1
            if progress:
                progress({"event": "batch", "epoch": epoch, "epochs": epochs, "batch": b + 1, "batches": batches,
                          "loss": value})
            if deadline and time.monotonic() > deadline:
                stopped = "max_minutes"
                break
        record: dict[str, Any] = {"epoch": epoch, "loss": round(total / max(count, 1), 5),
                                  "seconds": round(time.monotonic() - started, 1)}
        if has_holdout:
            score = model_metrics(student, split.holdout, ks=(10,))["ndcg@10"]
            record["holdout_ndcg@10"] = round(score, 5)
            if score > best_score:
                best_score, best_epoch, stale = score, epoch, 0
                best_state = copy.deepcopy(student.state_dict())
            else:
                stale += 1
        history.append(record)
        logger.info("%s epoch %d: %s", model_name, epoch, record)
        if progress:
            progress({"event": "epoch", **record, "epochs": epochs})
        if stopped == "max_minutes":
            break
        if has_holdout and patience and stale >= patience:
            stopped = "early_stopping"
            break
    if best_state is not None:
        student.load_state_dict(best_state)
    if student.graph_score_vectors is not None:
        student.graph_score_weight.fill_(GRAPH_SCORE_WEIGHT)
    student.eval()
    config = {"model": model_name, "knowledge": knowledge_spec, "knowledge_dim": student.knowledge_dim,
              "graph_score_dim": student.graph_score_dim,
              "graph_score": None if graph_scores is None else
              f"late fusion: trained without it, added at weight {GRAPH_SCORE_WEIGHT} after training",
              "model_config": student.config(), "seed": seed, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "weight_decay": weight_decay, "patience": patience, "holdout_fraction": holdout_fraction,
              "max_minutes": max_minutes, "threads": threads, "loss": "CE over all items, every position",
              "optimizer": "Adam", "dataset": data.dataset.name}
    metrics = {"epochs_run": epoch, "best_epoch": best_epoch if has_holdout else epoch, "stopped": stopped,
               "holdout_users": len(split.holdout.users), "train_targets": sum(len(w) - 1 for w in windows),
               "seconds": round(time.monotonic() - started, 1), "peak_rss_mib": peak_rss_mib()}
    if has_holdout:
        metrics["holdout_ndcg@10"] = round(best_score, 5)
    return TrainResult(model=student, config=config, metrics=metrics, history=history)


__all__ = ["TrainResult", "TrainingDivergedError", "train_student"]
