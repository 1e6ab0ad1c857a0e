"""Training entry point of the dense bi-encoder (:class:`~kg_builder.models.dense.DenseKGModel`).

:func:`train_dense` loads a KG dataset, fine-tunes MiniLM on its ``train`` split (both directions
through inverse relations, in-batch negatives), evaluates on ``dev`` with the filtered ranking
protocol of :mod:`kg_builder.evaluation.kgc`, and saves the model to
``KGFORGE_HOME/models/dense-<dataset>``. :func:`fit` is the loop alone (used by the tests on
hand-made graphs).

CPU notes: the wall-clock budget (``max_minutes``) is checked between optimisation steps, so a run
stops within one step of it and still saves and evaluates what it learnt (``stopped_by_budget``).
One step of batch 64 at 48 tokens costs about 1-1.5 s on 2 cores (both towers, forward and
backward, measured on the development machine), so UMLS (10,432 examples with inverses) takes
about 3 minutes an epoch.

Example::

    result = train_dense(dataset="umls", data_dir="../shared/data", settings=Settings(), epochs=3,
                         batch_size=64, lr=5e-5, max_minutes=15, seed=0, progress=None)
    print(result.metrics["filtered"]["both"]["hits_at_10"], result.directory)
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kg_builder import __version__
from kg_builder.datasets import Dataset, TripleRecord, load_dataset
from kg_builder.errors import DatasetError, InvalidInputError, KGForgeError
from kg_builder.evaluation.kgc import ProgressLike, evaluate_split
from kg_builder.models.dense import DenseConfig, DenseKGModel, default_model_name
from kg_builder.models.encoder import TextEncoder, encoder_path
from kg_builder.models.saved import model_dir
from kg_builder.settings import Settings

RESULT_FILE = "training.json"


class TrainingError(KGForgeError):
    """Training cannot go on (a non-finite loss, no training triples)."""


@dataclass
class FitReport:
    """What :func:`fit` did: steps taken, mean loss per epoch, loss every step, wall seconds."""

    steps: int
    planned_steps: int
    epochs_completed: float
    epoch_losses: list[float]
    step_losses: list[float]
    seconds: float
    stopped_by_budget: bool


@dataclass
class TrainResult:
    """Result of :func:`train_dense` (PyKEEN-style): enough to reproduce and to compare runs."""

    model_name: str
    directory: Path
    dataset: str
    seed: int
    config: dict[str, Any]
    metrics: dict[str, Any] | None
    timings: dict[str, float]
    fit: FitReport
    version: str = __version__
    git_hash: str | None = None
    protocol: str | None = None
    model: DenseKGModel | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-step losses, no model)."""
        fit_report = asdict(self.fit)
        fit_report.pop("step_losses")
        return {"model_name": self.model_name, "directory": str(self.directory), "dataset": self.dataset,
                "seed": self.seed, "config": self.config, "metrics": self.metrics, "timings": self.timings,
                "fit": fit_report, "version": self.version, "git_hash": self.git_hash, "protocol": self.protocol}

    def save_to_directory(self, directory: Path | str | None = None) -> Path:
        """Write ``training.json`` (this result, per-step losses included) into ``directory``
        (default: the model folder); returns the file."""
        directory = Path(directory) if directory is not None else self.directory
        directory.mkdir(parents=True, exist_ok=True)
        data = self.as_dict()
        data["fit"]["step_losses"] = [round(x, 5) for x in self.fit.step_losses]
        path = directory / RESULT_FILE
        path.write_text(json.dumps(data, indent=2, default=str))
        return path


def git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, check=False,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit(
    model: DenseKGModel,
    triples: Sequence[TripleRecord],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    max_minutes: float | None = None,
    warmup: float = 0.05,
    weight_decay: float = 1e-4,
    progress: ProgressLike | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> FitReport:
    """Fine-tune ``model`` on ``triples`` (both directions) with AdamW and a linear warm-up/decay.

    The budget is checked before every step; a non-finite loss raises :class:`TrainingError`
    instead of training on NaN.
    """
    if epochs < 1 or batch_size < 2:
        raise InvalidInputError("epochs/batch_size", "need epochs >= 1 and batch_size >= 2 (in-batch negatives)")
    if lr <= 0:
        raise InvalidInputError("lr", "must be positive")
    examples = DenseKGModel.examples(triples)
    if not examples:
        raise TrainingError("no training triples; check the dataset's train split")
    known = DenseKGModel.known_answers(triples)
    steps_per_epoch = math.ceil(len(examples) / batch_size)
    planned = steps_per_epoch * epochs
    warm = max(1, int(planned * warmup))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (planned - s) / max(1, planned - warm))))
    rng = random.Random(seed)
    deadline = time.monotonic() + max_minutes * 60 if max_minutes is not None else None
    start = time.perf_counter()
    step, stopped = 0, False
    epoch_losses: list[float] = []
    step_losses: list[float] = []
    if progress is not None:
        progress.phase("train", planned)
    model.train()
    for _epoch in range(epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        losses = []
        for b in range(0, len(order), batch_size):
            if deadline is not None and time.monotonic() >= deadline:
                stopped = True
                break
            batch = [examples[i] for i in order[b:b + batch_size]]
            loss = model.loss(batch, known)
            if not torch.isfinite(loss):
                raise TrainingError(f"the loss became {loss.item()} at step {step}; lower the learning rate "
                                    f"(--lr, now {lr}) or the batch size")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            optimizer.step()
            scheduler.step()
            step += 1
            value = float(loss.item())
            losses.append(value)
            step_losses.append(value)
            if progress is not None:
                progress.advance(1)
            if on_step is not None:
                on_step(step, value)
        if losses:
            epoch_losses.append(float(np.mean(losses)))
        if stopped:
            break
    model.eval()
    return FitReport(steps=step, planned_steps=planned, epochs_completed=round(step / steps_per_epoch, 3),
                     epoch_losses=epoch_losses, step_losses=step_losses, seconds=time.perf_counter() - start,
                     stopped_by_budget=stopped)


def train_dense(
    *,
    dataset: str | Dataset,
    data_dir: Path | str | None = None,
    settings: Settings | None = None,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 5e-5,
    max_minutes: float | None = 15.0,
    seed: int = 0,
    progress: ProgressLike | None = None,
    name: str | None = None,
    config: DenseConfig | None = None,
    eval_split: str | None = "dev",
    threads: int | None = None,
    save: bool = True,
) -> TrainResult:
    """Train, evaluate on ``eval_split`` (filtered, both directions) and save the bi-encoder.

    Args:
        dataset: a registered KG dataset name (``umls``, ``wn18rr``, ``fb15k237``) or a loaded Dataset.
        data_dir: the data root (default: ``settings.data_dir``).
        max_minutes: wall-clock cap of the training loop (the evaluation afterwards is extra).
        name: model folder name under ``KGFORGE_HOME/models`` (default ``dense-<dataset>``).
        eval_split: split evaluated after training (skipped when absent or None).
        threads: torch CPU threads for this run (restored afterwards); default: torch's choice.

    Returns:
        :class:`TrainResult`; ``training.json`` is also written into the model folder.

    Raises:
        DatasetError: the dataset is unknown, missing or has no triples.
        TrainingError: the loss became non-finite.
    """
    settings = settings or Settings()
    if isinstance(dataset, str):
        from kg_builder.products.domain import load_kg_view

        ds = load_kg_view(dataset, Path(data_dir) if data_dir is not None else settings.data_dir)
    else:
        ds = dataset
    if ds.kind not in ("kg", "kgrec") or not ds.triples.get("train"):
        raise DatasetError(f"{ds.name} has no knowledge-graph train split; the dense model trains on KG datasets")
    name = name or default_model_name(ds.name)
    directory = model_dir(settings, name)
    config = config or DenseConfig()
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        seed_everything(seed)
        t0 = time.perf_counter()
        encoder = TextEncoder(encoder_path(settings), max_length=config.max_length)
        model = DenseKGModel(encoder, ds.entities, ds.relations, config, meta={"dataset": ds.name, "name": name})
        load_seconds = time.perf_counter() - t0
        report = fit(model, ds.triples["train"], epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                     max_minutes=max_minutes, progress=progress)
        metrics, protocol, encode_seconds, eval_seconds = None, None, 0.0, 0.0
        if eval_split and eval_split in ds.triples:
            t1 = time.perf_counter()
            model.entity_embeddings(progress=progress)
            encode_seconds = time.perf_counter() - t1
            result = evaluate_split(model.score, ds, eval_split, ranker=f"bi-encoder {name}", progress=progress)
            eval_seconds = time.perf_counter() - t1
            metrics = {"split": eval_split, **result.as_dict()["metrics"]}
            protocol = result.protocol
        hyper = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "max_minutes": max_minutes,
                 "threads": torch.get_num_threads(), "dense": asdict(config),
                 "train_triples": len(ds.triples["train"]), "num_entities": len(ds.entities)}
        timings = {"load_seconds": round(load_seconds, 2), "train_seconds": round(report.seconds, 2),
                   "encode_entities_seconds": round(encode_seconds, 2), "eval_seconds": round(eval_seconds, 2)}
        model.meta.update({"training": {**hyper, "seed": seed, "steps": report.steps,
                                        "epochs_completed": report.epochs_completed,
                                        "stopped_by_budget": report.stopped_by_budget},
                           "metrics": metrics, "timings": timings})
        result_obj = TrainResult(model_name=name, directory=directory, dataset=ds.name, seed=seed, config=hyper,
                                 metrics=metrics, timings=timings, fit=report, git_hash=git_hash(),
                                 protocol=protocol, model=model)
        if save:
            model.save(directory)
            result_obj.save_to_directory()
        return result_obj
    finally:
        torch.set_num_threads(previous_threads)
