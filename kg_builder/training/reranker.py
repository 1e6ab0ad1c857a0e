"""Training entry point for the KG-BERT-style reranker (:class:`~kg_builder.models.cross_encoder.TripleCrossEncoder`).

Binary cross-entropy on every train triple against ``negatives`` corrupted triples each (a fresh
sample every epoch), AdamW, a wall-clock budget checked between steps. The logit threshold is then
chosen on dev by triple classification and stored with the model; dev accuracy is the reported
metric. On UMLS with the defaults one epoch is ~10.4k pairs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from kg_builder.datasets import Dataset, TripleRecord
from kg_builder.errors import InvalidInputError
from kg_builder.evaluation.triples import classify_triples, corrupt_triples
from kg_builder.models.cross_encoder import CrossEncoderConfig, TripleCrossEncoder, default_model_name
from kg_builder.models.encoder import encoder_path
from kg_builder.models.saved import model_dir
from kg_builder.settings import Settings
from kg_builder.training.dense import TrainingError, git_hash, seed_everything
from kg_builder.training.result import ModelTrainResult


def train_reranker(*, dataset: Dataset, settings: Settings, epochs: float = 1.0, batch_size: int = 16,
                   lr: float = 3e-5, negatives: int = 1, max_minutes: float = 30.0, seed: int = 13,
                   name: str | None = None, config: CrossEncoderConfig | None = None,
                   progress: Callable[[int, int, float], None] | None = None,
                   save: bool = True) -> ModelTrainResult:
    """Fine-tune the cross-encoder on ``dataset``'s train split; threshold and accuracy from dev.

    ``progress(step, planned_steps, loss)`` is called after every step.
    """
    if "train" not in dataset.triples or not dataset.triples["train"]:
        raise InvalidInputError("dataset", f"{dataset.name} has no train triples")
    if negatives < 1:
        raise InvalidInputError("negatives", "must be at least 1")
    seed_everything(seed)
    started = time.perf_counter()
    model = TripleCrossEncoder(dataset.entities, dataset.relations, config, path=encoder_path(settings),
                               meta={"dataset": dataset.name, "negatives": negatives, "seed": seed})
    entity_ids = [e.id for e in dataset.entities]
    train = dataset.triples["train"]
    known = dataset.all_triples()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    pairs_per_epoch = len(train) * (1 + negatives)
    planned = max(1, int(np.ceil(epochs * pairs_per_epoch / batch_size)))
    deadline = started + max_minutes * 60
    rng = random.Random(seed)
    step, epoch, stopped = 0, 0, False
    epoch_losses: list[float] = []
    model.train()
    while step < planned and not stopped:
        negs = corrupt_triples(train, entity_ids, known, per_positive=negatives, seed=seed + 1000 + epoch)
        examples: list[tuple[TripleRecord, float]] = [(t, 1.0) for t in train] + [(t, 0.0) for t in negs]
        rng.shuffle(examples)
        losses = []
        for start in range(0, len(examples), batch_size):
            if step >= planned:
                break
            if time.perf_counter() > deadline:
                stopped = True
                break
            batch = examples[start:start + batch_size]
            logits = model([t for t, _ in batch])
            loss = loss_fn(logits, torch.tensor([y for _, y in batch]))
            if not torch.isfinite(loss):
                raise TrainingError(f"non-finite loss at step {step}; lower --lr (now {lr})")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
            if progress:
                progress(step, planned, losses[-1])
        if losses:
            epoch_losses.append(float(np.mean(losses)))
        epoch += 1
    train_seconds = time.perf_counter() - started
    metrics: dict[str, Any] = {"steps": step, "planned_steps": planned}
    dev = dataset.triples.get("dev") or dataset.triples.get("valid")
    if dev:
        result = classify_triples(model.score, dev=dev, evaluated=dev, entity_ids=entity_ids, known=known, seed=seed)
        model.config.threshold = result.threshold
        metrics["dev_triple_accuracy"] = result.dev_accuracy
    name = name or default_model_name(dataset.name)
    directory = model_dir(settings, name)
    res = ModelTrainResult(model_name=name, directory=directory, dataset=dataset.name, seed=seed,
                              config={"epochs": epochs, "batch_size": batch_size, "lr": lr, "negatives": negatives,
                                      "max_minutes": max_minutes, **asdict(model.config)},
                              metrics=metrics, timings={"train_seconds": train_seconds,
                                                        "total_seconds": time.perf_counter() - started},
                              epoch_losses=epoch_losses, stopped_by_budget=stopped, git_hash=git_hash(), model=model)
    model.meta.update({"metrics": metrics, "timings": res.timings})
    if save:
        model.save(directory)
        res.save_to_directory()
    return res
