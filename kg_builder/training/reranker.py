"""Training entry point for the KG-BERT-style reranker (:class:`~kg_builder.models.cross_encoder.TripleCrossEncoder`).

What it learns from: every train triple is a positive; its negatives are

* ``negatives`` corrupted triples (head or tail replaced at random, filtered),
* ``hard_negatives`` false candidates of the pipeline's ``graph`` generator: ComplEx's top tails for
  the triple's ``(h, r)`` that are not known true (the saved ``structural-<dataset>`` when its
  entities match, else a quick ComplEx trained here on train),
* ``range_negatives`` tails of the same relation elsewhere in train (type-plausible, not known),
* ``head_negatives`` ComplEx's most plausible false triples of the head over *every* relation (the
  pipeline picks relations too, so its false candidates often have the wrong relation as well as
  the wrong tail; the graph generator proposes ComplEx's top tails of each picked relation). Off by
  default: at the same 12 minutes on UMLS, a reranker trained with them was no better in the
  pipeline on dev (README, "Reranker"). Mining costs one ``[relations, entities]`` score per
  train head, which grows with the relation count (FB15k-237's 237).

"Known" is train + dev: no label ever comes from the test split (a test triple mined as a
negative stays a negative, as it would for a user who does not have the test split).

How: sentence-transformers' ``CrossEncoderTrainer`` with ``BinaryCrossEntropyLoss`` (AdamW, warm-up
then a linear decay that runs on whichever comes first, the planned steps or the wall clock, so a
run stopped by ``max_minutes`` still ends at a small learning rate); a callback stops training at
``max_minutes`` and reports progress.

Dev (never trained on): the decision threshold maximises accuracy over dev true triples + one
corrupted + one hard negative each; accuracy is reported separately against corrupted and against
hard negatives; and ComplEx's filtered top-10 tails for dev triples are reranked (MRR of ComplEx
alone, the reranker alone, and ComplEx + weight x logit with the weight cross-fitted on dev).
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from kg_builder.datasets import Dataset, TripleRecord
from kg_builder.errors import InvalidInputError
from kg_builder.evaluation.kgc import Query
from kg_builder.evaluation.triples import (
    TopPairs,
    TopTails,
    accuracy_at,
    best_threshold,
    corrupt_triples,
    hard_negatives,
    head_negatives,
    range_negatives,
    relation_ranges,
    rerank_metrics,
)
from kg_builder.models.cross_encoder import CrossEncoderConfig, TripleCrossEncoder, default_model_name
from kg_builder.models.encoder import encoder_path
from kg_builder.models.saved import ModelNotTrainedError, model_dir
from kg_builder.models.structural import ComplEx
from kg_builder.settings import Settings
from kg_builder.training.dense import TrainingError, git_hash, seed_everything
from kg_builder.training.result import ModelTrainResult

Progress = Callable[[int, int, float], None]


def complex_top_tails(model: ComplEx, *, k: int, batch_size: int = 256) -> Callable[[Sequence[tuple[str, str]]], list[list[str]]]:
    """A :data:`~kg_builder.evaluation.triples.TopTails` from ComplEx (what the ``graph`` generator
    proposes): each query's ``k`` best tails; queries outside the model's vocabulary get none."""
    def top_tails(queries: Sequence[tuple[str, str]]) -> list[list[str]]:
        out: list[list[str]] = [[] for _ in queries]
        usable = [i for i, (h, r) in enumerate(queries) if h in model.entity_index and r in model.relation_index]
        for start in range(0, len(usable), batch_size):
            rows = usable[start:start + batch_size]
            scores = model.score([Query(queries[i][0], queries[i][1], False) for i in rows])
            top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            for i, cols in zip(rows, top, strict=True):
                out[i] = [model.entity_ids[c] for c in cols]
        return out

    return top_tails


def complex_top_pairs(model: ComplEx) -> TopPairs:
    """A :data:`~kg_builder.evaluation.triples.TopPairs` from ComplEx: each head's best
    ``(relation, tail)`` pairs over every relation by raw score (heads outside the vocabulary get none)."""
    relations = list(model.relation_index)

    def top_pairs(heads: Sequence[str], depths: Sequence[int]) -> list[list[tuple[str, str]]]:
        out: list[list[tuple[str, str]]] = []
        for head, depth in zip(heads, depths, strict=True):
            if head not in model.entity_index or not relations:
                out.append([])
                continue
            scores = np.asarray(model.score([Query(head, r, False) for r in relations]), dtype=np.float64).ravel()
            depth = min(depth, scores.size)
            top = np.argpartition(-scores, depth - 1)[:depth]
            flat = top[np.argsort(-scores[top], kind="stable")]
            rows, cols = np.divmod(flat, len(model.entity_ids))
            out.append([(relations[r], model.entity_ids[c]) for r, c in zip(rows, cols, strict=True)])
        return out

    return top_pairs


def complex_scores(model: ComplEx) -> Callable[[Sequence[tuple[str, str]]], np.ndarray]:
    """``[(head, relation)] -> [n, num_entities]`` tail scores (first stage of the dev rerank)."""
    return lambda queries: model.score([Query(h, r, False) for h, r in queries])


def structural_for(dataset: Dataset, settings: Settings, *, max_minutes: float = 2.0,
                   seed: int = 13) -> tuple[ComplEx, str]:
    """The saved ``structural-<dataset>`` when it ranks this dataset's entities, else a ComplEx
    trained now on train (seconds on UMLS); returns the model and a line saying which."""
    from kg_builder.training.structural import train_structural

    ids = {e.id for e in dataset.entities}
    try:
        saved = ComplEx.load(f"structural-{dataset.name}", settings=settings)
        if set(saved.entity_ids) == ids:
            return saved, f"saved structural-{dataset.name}"
    except ModelNotTrainedError:
        pass
    started = time.perf_counter()
    model = train_structural(dataset=dataset, settings=settings, max_minutes=max_minutes, seed=seed, save=False).model
    return model, f"ComplEx trained on train for this run ({time.perf_counter() - started:.0f}s)"


@dataclass
class TrainingExamples:
    """Labelled triples for the reranker, with the kind of each (``true``, ``hard``, ``range``,
    ``corrupted``) and the count of each kind."""

    triples: list[TripleRecord]
    labels: list[float]
    kinds: list[str]

    @property
    def counts(self) -> dict[str, int]:
        counts = {kind: self.kinds.count(kind) for kind in ("true", "corrupted", "hard", "range", "head")}
        return {"positives": counts.pop("true"), **counts, "examples": len(self.triples)}


def known_triples(dataset: Dataset) -> list[TripleRecord]:
    """What reranker labels and filters may use: train + dev, never test."""
    return [*dataset.triples.get("train", []), *(dataset.triples.get("dev") or dataset.triples.get("valid") or [])]


def training_examples(dataset: Dataset, top_tails: TopTails, *, negatives: int = 1, hard: int = 1,
                      same_range: int = 1, head: int = 0, top_pairs: TopPairs | None = None,
                      seed: int = 13) -> TrainingExamples:
    """Every train triple (label 1) and its negatives (label 0): ``hard`` of the generator's false
    candidates (``top_tails``), ``same_range`` same-relation tails, ``head`` of the head's false
    candidates over every relation (``top_pairs``), ``negatives`` corrupted triples; filtered
    against train + dev (:func:`known_triples`); a negative drawn twice is kept once."""
    train = dataset.triples["train"]
    known = known_triples(dataset)
    entity_ids = [e.id for e in dataset.entities]
    by_kind = {
        "hard": hard_negatives(train, top_tails, known, per_positive=hard),
        "range": range_negatives(train, relation_ranges(train), known, per_positive=same_range, seed=seed + 2000),
        "head": head_negatives(train, top_pairs, known, per_positive=head) if head and top_pairs else [],
        "corrupted": corrupt_triples(train, entity_ids, known, per_positive=negatives, seed=seed + 1000)
        if negatives else [],
    }
    out = TrainingExamples(list(train), [1.0] * len(train), ["true"] * len(train))
    seen = set(train)
    for kind, triples in by_kind.items():
        for t in triples:
            if t not in seen:
                seen.add(t)
                out.triples.append(t)
                out.labels.append(0.0)
                out.kinds.append(kind)
    return out


class _CachedScorer:
    """The model's ``score`` with a cache: dev classification and the rerank share triples."""

    def __init__(self, model: TripleCrossEncoder):
        self.model = model
        self.cache: dict[TripleRecord, float] = {}

    def __call__(self, triples: Sequence[TripleRecord]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in triples if t not in self.cache))
        if missing:
            self.cache.update(zip(missing, self.model.score(missing).tolist(), strict=True))
        return np.array([self.cache[t] for t in triples], dtype=np.float64)


def _dev_report(model: TripleCrossEncoder, dataset: Dataset, dev: list[TripleRecord], known: list[TripleRecord],
                structural: ComplEx, top_tails: TopTails, *, dev_triples: int, rank_queries: int, k: int,
                seed: int) -> dict[str, Any]:
    """Choose the threshold on dev; accuracy against corrupted / hard negatives; top-k rerank MRR.

    ``dev_triples`` / ``rank_queries`` cap the dev triples used (a seeded sample): scoring is the
    slow part on a CPU."""
    entity_ids = [e.id for e in dataset.entities]
    scorer = _CachedScorer(model)
    sample = dev if len(dev) <= dev_triples else random.Random(seed).sample(dev, dev_triples)
    corrupted = corrupt_triples(sample, entity_ids, known, per_positive=1, seed=seed)
    mined = hard_negatives(sample, top_tails, known, per_positive=1)
    scores = scorer([*sample, *corrupted, *mined])
    pos, cor, hard = np.split(scores, [len(sample), len(sample) + len(corrupted)])
    labels = np.concatenate([np.ones(len(sample)), np.zeros(len(corrupted) + len(mined))])
    threshold = best_threshold(scores, labels)
    model.config.threshold = threshold
    report: dict[str, Any] = {
        "dev_threshold_logit": threshold,
        "dev_accuracy": accuracy_at(scores, labels, threshold),
        "dev_accuracy_corrupted": accuracy_at(np.concatenate([pos, cor]),
                                              np.r_[np.ones(len(pos)), np.zeros(len(cor))], threshold),
        "dev_accuracy_hard": accuracy_at(np.concatenate([pos, hard]),
                                         np.r_[np.ones(len(pos)), np.zeros(len(hard))], threshold),
        # KG-BERT's balanced protocol per kind (1 true : 1 negative, its own best dev threshold)
        "dev_accuracy_corrupted_balanced": _best_accuracy(pos, cor),
        "dev_accuracy_hard_balanced": _best_accuracy(pos, hard),
        # threshold-free: does the logit order true triples above each kind of negative?
        "dev_auc_corrupted": _auc(pos, cor),
        "dev_auc_hard": _auc(pos, hard),
        "dev_counts": {"true": len(sample), "corrupted": len(corrupted), "hard": len(mined)},
    }
    if rank_queries > 0:
        ranked = sample if len(sample) <= rank_queries else random.Random(seed + 1).sample(sample, rank_queries)
        rerank = rerank_metrics(ranked, complex_scores(structural), structural.entity_ids, scorer, known, k=k,
                                seed=seed)
        report["dev_rerank"] = rerank.as_dict()
    return report


def _best_accuracy(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Accuracy at the threshold that is best for these positives and negatives."""
    scores = np.concatenate([positives, negatives])
    labels = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    return accuracy_at(scores, labels, best_threshold(scores, labels)) if len(negatives) else float("nan")


def _auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """ROC AUC of positives against negatives (ties count half); NaN when either is empty."""
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    above = (positives[:, None] > negatives[None, :]).mean()
    ties = (positives[:, None] == negatives[None, :]).mean()
    return float(above + 0.5 * ties)


def _threads(threads: int | None) -> int:
    """Torch threads for training and scoring: ``threads``, else one when the machine is already
    busy (load average at or above its cores), else torch's default. Measured on a shared 2-core
    machine at load ~17: one thread made a training step 3.5x faster than two (4.6 s vs 15.9 s)."""
    import torch

    if threads is not None:
        if threads < 1:
            raise InvalidInputError("threads", "must be at least 1")
        return threads
    try:
        busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
    except OSError:  # pragma: no cover - no load average on this platform
        busy = False
    return 1 if busy else torch.get_num_threads()


def train_reranker(*, dataset: Dataset, settings: Settings, epochs: float = 1.0, batch_size: int = 16,
                   lr: float = 2e-4, negatives: int = 1, hard_negatives_per_positive: int = 1,
                   range_negatives_per_positive: int = 1, head_negatives_per_positive: int = 0,
                   hard_k: int = 30, max_minutes: float = 30.0,
                   seed: int = 13, name: str | None = None, config: CrossEncoderConfig | None = None,
                   structural: ComplEx | None = None, freeze_layers: int = 3, threads: int | None = None,
                   dev_triples: int = 300, rank_queries: int = 100, rank_k: int = 10,
                   progress: Progress | None = None, save: bool = True) -> ModelTrainResult:
    """Fine-tune the cross-encoder on ``dataset``'s train split; threshold and metrics from dev.

    Args:
        negatives / hard_negatives_per_positive / range_negatives_per_positive /
            head_negatives_per_positive: negatives of each kind per train triple (module docstring).
        hard_k: how deep in ComplEx's ranking hard negatives are mined.
        max_minutes: wall-clock budget of preparation (mining, loading) and training together; the
            dev report comes after it.
        structural: the ComplEx to mine with (default: :func:`structural_for`).
        freeze_layers: the word embeddings and this many lower transformer layers stay frozen (a
            step costs ~40 % less on a CPU; the upper layers and the head learn the triples).
        threads: torch threads (default: :func:`_threads` decides from the machine's load).
        dev_triples: dev triples (each with one corrupted and one hard negative) that choose the
            threshold and give the accuracies (a seeded sample when dev is larger).
        rank_queries: of those, the triples in the top-``rank_k`` rerank report (0: skip it).
        progress: ``progress(step, planned_steps, loss)`` after every step.

    Returns:
        :class:`ModelTrainResult`: ``metrics`` holds steps, example counts and the dev report.

    Example:
        >>> result = train_reranker(dataset=load_dataset("umls", data), settings=Settings(), max_minutes=5)
        >>> result.metrics["dev_accuracy_hard"], result.model.threshold_logit
    """
    if "train" not in dataset.triples or not dataset.triples["train"]:
        raise InvalidInputError("dataset", f"{dataset.name} has no train triples")
    for field_name, value in (("negatives", negatives), ("hard_negatives", hard_negatives_per_positive),
                              ("range_negatives", range_negatives_per_positive),
                              ("head_negatives", head_negatives_per_positive)):
        if value < 0:
            raise InvalidInputError(field_name, "must be zero or more")
    if negatives + hard_negatives_per_positive + range_negatives_per_positive + head_negatives_per_positive < 1:
        raise InvalidInputError("negatives", "at least one negative per true triple is needed")
    if batch_size < 2 or lr <= 0 or epochs <= 0 or max_minutes <= 0:
        raise InvalidInputError("batch_size", "batch_size >= 2, lr > 0, epochs > 0 and max_minutes > 0 are required")
    import torch

    seed_everything(seed)
    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(_threads(threads))
    try:
        return _train(dataset=dataset, settings=settings, epochs=epochs, batch_size=batch_size, lr=lr,
                      negatives=negatives, hard=hard_negatives_per_positive, same_range=range_negatives_per_positive,
                      head=head_negatives_per_positive,
                      hard_k=hard_k, max_minutes=max_minutes, seed=seed, name=name, config=config,
                      structural=structural, freeze_layers=freeze_layers, dev_triples=dev_triples,
                      rank_queries=rank_queries, rank_k=rank_k, progress=progress, save=save, started=started)
    finally:
        torch.set_num_threads(previous_threads)


def _train(*, dataset: Dataset, settings: Settings, epochs: float, batch_size: int, lr: float, negatives: int,
           hard: int, same_range: int, head: int, hard_k: int, max_minutes: float, seed: int, name: str | None,
           config: CrossEncoderConfig | None, structural: ComplEx | None, freeze_layers: int, dev_triples: int,
           rank_queries: int, rank_k: int, progress: Progress | None, save: bool, started: float) -> ModelTrainResult:
    import torch

    dev = list(dataset.triples.get("dev") or dataset.triples.get("valid") or [])
    known = known_triples(dataset)  # never the test split
    if structural is None:
        structural, structural_source = structural_for(dataset, settings, seed=seed)
    else:
        structural_source = structural.meta.get("name", "given ComplEx")
    top_tails = complex_top_tails(structural, k=hard_k)
    examples = training_examples(dataset, top_tails, negatives=negatives, hard=hard, same_range=same_range,
                                 head=head, top_pairs=complex_top_pairs(structural),
                                 seed=seed)
    model = TripleCrossEncoder(dataset.entities, dataset.relations, config, path=encoder_path(settings),
                               meta={"dataset": dataset.name, "seed": seed})
    prepared = time.perf_counter()
    steps, planned, epoch_losses, stopped = _fit(model, examples.triples, examples.labels, epochs=epochs,
                                                 batch_size=batch_size, lr=lr, freeze_layers=freeze_layers,
                                                 seconds=max_minutes * 60 - (prepared - started), seed=seed,
                                                 progress=progress)
    train_seconds = time.perf_counter() - prepared
    metrics: dict[str, Any] = {"steps": steps, "planned_steps": planned, "examples": examples.counts,
                               "hard_negatives_from": structural_source}
    if dev:
        metrics.update(_dev_report(model, dataset, dev, known, structural, top_tails, dev_triples=dev_triples,
                                   rank_queries=rank_queries, k=rank_k, seed=seed))
        # the name the CLI and older results used
        metrics["dev_triple_accuracy"] = metrics["dev_accuracy"]
    name = name or default_model_name(dataset.name)
    directory = model_dir(settings, name)
    timings = {"prepare_seconds": prepared - started, "train_seconds": train_seconds,
               "dev_seconds": time.perf_counter() - prepared - train_seconds,
               "total_seconds": time.perf_counter() - started}
    res = ModelTrainResult(model_name=name, directory=directory, dataset=dataset.name, seed=seed,
                           config={"epochs": epochs, "batch_size": batch_size, "lr": lr, "negatives": negatives,
                                   "hard_negatives": hard, "range_negatives": same_range, "head_negatives": head,
                                   "hard_k": hard_k,
                                   "freeze_layers": freeze_layers, "threads": torch.get_num_threads(),
                                   "max_minutes": max_minutes, **asdict(model.config)},
                           metrics=metrics, timings=timings, epoch_losses=epoch_losses, stopped_by_budget=stopped,
                           git_hash=git_hash(), model=model)
    model.meta.update({"metrics": metrics, "timings": timings})
    if save:
        model.save(directory)
        res.save_to_directory()
    return res


def _freeze(transformer: Any, layers: int) -> None:
    """Freeze the embeddings and the lowest ``layers`` layers. The word-embedding matrix is half of
    MiniLM's weights and a few thousand triples cannot move it usefully; with three of six layers
    frozen too, a step took 2.6 s instead of 4.6 s (batch 16, 94 tokens, one busy CPU thread)."""
    if layers < 0:
        raise InvalidInputError("freeze_layers", "must be zero or more")
    transformer.get_input_embeddings().weight.requires_grad_(False)
    base = getattr(transformer, "base_model", transformer)
    blocks = getattr(getattr(base, "encoder", None), "layer", None)
    if layers and blocks is not None:
        for module in [getattr(base, "embeddings", None), *list(blocks)[:layers]]:
            if module is not None:
                module.requires_grad_(False)


def _fit(model: TripleCrossEncoder, triples: list[TripleRecord], labels: list[float], *, epochs: float,
         batch_size: int, lr: float, freeze_layers: int, seconds: float, seed: int,
         progress: Progress | None) -> tuple[int, int, list[float], bool]:
    """CrossEncoderTrainer + BinaryCrossEntropyLoss with a wall-clock budget; returns (steps,
    planned steps, mean loss per epoch, stopped by the budget)."""
    import torch
    from datasets import Dataset as HFDataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    pairs = model.pairs(*model.triple_texts(triples))
    data = HFDataset.from_dict({"first": [a for a, _ in pairs], "second": [b for _, b in pairs],
                                "label": [float(y) for y in labels]})
    steps_per_epoch = math.ceil(len(data) / batch_size)
    planned = max(1, math.ceil(epochs * steps_per_epoch))
    # a short warm-up: a budget-bound run on a CPU may only get a few hundred steps
    warmup = max(1, min(20, planned // 10))
    clock = {"start": time.perf_counter()}
    budget = max(seconds, 1.0)

    def factor(step: int) -> float:
        # linear warm-up, then linear decay on whichever is further along: steps or wall clock
        done = max(step / planned, (time.perf_counter() - clock["start"]) / budget)
        return min(1.0, (step + 1) / warmup) * max(0.02, 1.0 - done)

    _freeze(model.model.model, freeze_layers)
    trainable = [p for p in model.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    losses: dict[int, list[float]] = {}
    state = {"stopped": False, "loss": float("nan")}

    class Budget(TrainerCallback):
        def on_train_begin(self, args, state_, control, **kwargs):
            clock["start"] = time.perf_counter()

        def on_log(self, args, state_, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                loss = float(logs["loss"])
                if not math.isfinite(loss):
                    raise TrainingError(f"non-finite loss at step {state_.global_step}; lower --lr (now {lr})")
                state["loss"] = loss
                losses.setdefault(int(max(state_.epoch or 0.0, 1e-9) - 1e-9), []).append(loss)

        def on_step_end(self, args, state_, control, **kwargs):
            if progress:
                progress(state_.global_step, planned, state["loss"])
            if time.perf_counter() - clock["start"] > budget and state_.global_step < planned:
                state["stopped"] = True
                control.should_training_stop = True
            return control

    with tempfile.TemporaryDirectory(prefix="kgforge-reranker-") as out:
        args = CrossEncoderTrainingArguments(
            output_dir=out, num_train_epochs=epochs, per_device_train_batch_size=batch_size, learning_rate=lr,
            seed=seed, data_seed=seed, logging_strategy="steps", logging_steps=1, save_strategy="no",
            eval_strategy="no", report_to="none", disable_tqdm=True, dataloader_num_workers=0,
            use_cpu=not torch.cuda.is_available())
        trainer = CrossEncoderTrainer(model=model.model, args=args, train_dataset=data,
                                      loss=BinaryCrossEntropyLoss(model.model), optimizers=(optimizer, scheduler),
                                      callbacks=[Budget()])
        for noisy in (PrinterCallback, ProgressCallback):  # stdout must stay clean for --json
            trainer.remove_callback(noisy)
        trainer.train()
        steps = trainer.state.global_step
    model.model.eval()
    epoch_losses = [float(np.mean(v)) for _, v in sorted(losses.items())]
    return steps, planned, epoch_losses, state["stopped"]


__all__ = ["TrainingExamples", "complex_scores", "complex_top_pairs", "complex_top_tails", "known_triples", "structural_for",
           "train_reranker", "training_examples"]
