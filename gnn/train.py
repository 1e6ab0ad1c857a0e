"""GNN pretraining, fine-tuning and adaptive source selection (issue 11, points 2-3).

Entry points are keyword-only functions returning a :class:`TrainResult` (model, config, metrics,
history, ``save_to_directory()``), like PyKEEN's ``pipeline``:

* :func:`pretrain`: self-supervised link prediction on ``user-interacts-item`` edges with
  :class:`~gnn.sampling.LinkBatchSampler` batches (bounded memory). Loss = BPR
  (``-log sigmoid(s(u, i) - s(u, j))``, dot-product scores, ``j`` an in-domain negative) plus the
  same BPR on an item-item pair (another item ``i'`` of the same user: ``s(i', i) > s(i', j)``),
  which trains the history-to-item similarity that :mod:`gnn.evaluate` scores with. Item-item
  links (Office complement / substitute) take part as message-passing edges.
* :func:`finetune`: a new encoder for the target graph whose shared weights (text projection,
  convolutions) are copied from a pretrained one; ID embeddings are new for the target's nodes.
* :func:`select_sources`: **adaptive transfer by validation gain**. For each candidate source
  subset (e.g. Games, Office, both, and none = from scratch) pretrain for a small budget, fine-tune
  on the target with part of the target's train data held out, and keep the subset with the best
  validation NDCG@10. The validation is :func:`gnn.export.holdout_last_train`: the last *train*
  item of 20 % of the target's users, removed from the graph (never the ``valid``/``test`` split).

Stopping: ``epochs``, ``max_minutes`` or ``max_batches`` (the first reached; at least one is
required). A non-finite loss stops training with :class:`TrainingDivergedError` before anything is
written (``output_dir`` is only written after a successful run). Training uses one torch thread
(on the shared 2-core machine two threads were slower, see ``tests/conftest.py``).

Metrics: ``edges_per_s`` (positive supervision edges per second of training), ``seconds``,
``batches``, ``final_loss``, ``largest_batch_nodes`` (measured) and ``node_bound_per_batch`` (the
sampler's loose a-priori bound), ``peak_rss_mib`` (``resource.getrusage`` of the process: the peak of
the whole process so far, graph and encoder included, not of training alone).

Measured (dev numbers, LightGCN, dim 64, batch 1,024, 4 negatives, neighbours (10, 5), one
thread, shared 2-core machine): pretraining on Games+Office (19,279 items, 55,451 users, 382,620
interactions + Office's item links) ran 1,645 positive edges/s (100 batches in 62 s; a full
epoch would take about 4 minutes), peak RSS 1.08 GB for the process holding Scientific, Games
and Office graphs; fine-tuning on Scientific 2.6-5.7k edges/s (150 batches in 27-57 s depending
on the machine's load). The quality these give is in :mod:`gnn.evaluate`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from kg_builder.errors import InvalidInputError, TrainingDivergedError
from kg_builder.training.result import peak_rss_mib

from .models import GraphEncoder, build_model
from .sampling import LinkBatchSampler, full_batch

logger = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    """A trained encoder with its configuration, metrics and per-epoch history."""

    model: GraphEncoder
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)

    def save_to_directory(self, folder: Path | str) -> Path:
        """The model folder (``config.json`` + ``model.safetensors``) plus ``training.json``."""
        folder = self.model.save(folder)
        (folder / "training.json").write_text(json.dumps(
            {"config": self.config, "metrics": self.metrics, "history": self.history}, indent=2, default=str))
        return folder


def bpr(pos: Tensor, neg: Tensor) -> Tensor:
    """BPR loss for scores ``pos [B]`` and ``neg [B, K]``."""
    return -F.logsigmoid(pos[:, None] - neg).mean()


def batch_loss(h: dict[str, Tensor], batch: HeteroData, *, item_loss_weight: float = 1.0) -> Tensor:
    users, items = h["user"][batch.pos_user], h["item"][batch.pos_item]
    negs = h["item"][batch.neg_item]                     # [B, K, d]
    loss = bpr((users * items).sum(-1), torch.einsum("bd,bkd->bk", users, negs))
    if item_loss_weight and "co_item" in batch:
        anchor = h["item"][batch.co_item]
        loss = loss + item_loss_weight * bpr((anchor * items).sum(-1), torch.einsum("bd,bkd->bk", anchor, negs))
    return loss


def _optimiser(model: GraphEncoder, *, lr: float, weight_decay: float, shared_lr_scale: float) -> torch.optim.Adam:
    """Adam over every weight; the shared ones (all but the ID embeddings: what
    :meth:`GraphEncoder.load_shared` transfers) at ``lr * shared_lr_scale``."""
    if shared_lr_scale == 1.0:
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if n.startswith("id_emb.")]},
              {"params": [p for n, p in named if not n.startswith("id_emb.")], "lr": lr * shared_lr_scale}]
    return torch.optim.Adam([g for g in groups if g["params"]], lr=lr, weight_decay=weight_decay)


def _train(model: GraphEncoder, data: HeteroData, *, epochs: int | None, max_minutes: float | None,
           max_batches: int | None, seed: int, batch_size: int, num_neighbors: Sequence[int], num_negatives: int,
           lr: float, weight_decay: float, item_loss_weight: float, progress: Progress | None,
           stage: str, shared_lr_scale: float = 1.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if epochs is None and max_minutes is None and max_batches is None:
        raise InvalidInputError("epochs", "give epochs, max_minutes or max_batches (none would never stop)")
    sampler = LinkBatchSampler(data, num_neighbors=num_neighbors, batch_size=batch_size,
                               num_negatives=num_negatives, seed=seed)
    optimiser = _optimiser(model, lr=lr, weight_decay=weight_decay, shared_lr_scale=shared_lr_scale)
    deadline = time.monotonic() + 60 * max_minutes if max_minutes is not None else None
    start = time.monotonic()
    history: list[dict[str, Any]] = []
    batches = edges = largest = 0
    loss_value = float("nan")
    epoch = 0
    done = False
    model.train()
    while not done:
        epoch += 1
        total, count = 0.0, 0
        for batch in sampler:
            optimiser.zero_grad()
            loss = batch_loss(model(batch), batch, item_loss_weight=item_loss_weight)
            if not torch.isfinite(loss):
                raise TrainingDivergedError(
                    f"{stage}: the loss became {loss.item()} at epoch {epoch}, batch {count + 1}; nothing was "
                    f"saved. Lower the learning rate (lr={lr}) or check the input features for NaN.")
            loss.backward()
            optimiser.step()
            loss_value = float(loss.item())
            total += loss_value
            count += 1
            batches += 1
            edges += int(batch.pos_user.numel())
            largest = max(largest, sum(int(batch[nt].num_nodes) for nt in batch.node_types))
            if progress is not None:
                progress({"stage": stage, "epoch": epoch, "batch": count, "batches_per_epoch": len(sampler),
                          "loss": loss_value, "elapsed_s": round(time.monotonic() - start, 2)})
            if (deadline is not None and time.monotonic() >= deadline) or \
                    (max_batches is not None and batches >= max_batches):
                done = True
                break
        history.append({"epoch": epoch, "loss": total / max(count, 1), "batches": count})
        if epochs is not None and epoch >= epochs:
            done = True
    seconds = time.monotonic() - start
    metrics = {"seconds": round(seconds, 2), "epochs": epoch, "batches": batches, "edges": edges,
               "edges_per_s": round(edges / max(seconds, 1e-9), 1), "final_loss": round(loss_value, 5),
               "peak_rss_mib": peak_rss_mib(), "largest_batch_nodes": largest,
               "node_bound_per_batch": sampler.max_nodes()}
    model.eval()
    return metrics, history


Validate = Callable[[GraphEncoder], float]


def holdout_validator(graph: HeteroData, sequences) -> Validate:
    """NDCG@10 of the evaluation protocol on a train-only holdout (:func:`gnn.export.holdout_last_train`)
    for early stopping: item embeddings from one forward pass over ``graph`` (the holdout's graph)."""
    from kg_builder.evaluation.titles import rank_metrics

    def validate(model: GraphEncoder) -> float:
        E = item_embeddings(model, graph)
        E = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
        return float(rank_metrics(E, sequences)["ndcg@10"])

    return validate


def _train_next_item(model: GraphEncoder, data: HeteroData, *, epochs: int | None, max_minutes: float | None,
                     max_batches: int | None, seed: int, batch_size: int, lr: float, weight_decay: float,
                     temperature: float, validate: Validate | None, eval_every: int, patience: int | None,
                     progress: Progress | None, stage: str,
                     shared_lr_scale: float = 1.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The next-item objective (:mod:`gnn.objectives`) with early stopping on ``validate``: the best
    validated state (the start included) is the one kept."""
    from .objectives import domain_pair_slices, next_item_loss

    if epochs is None and max_minutes is None and max_batches is None:
        raise InvalidInputError("epochs", "give epochs, max_minutes or max_batches (none would never stop)")
    targets = getattr(data, "seq_target", None)
    if targets is None or len(targets) == 0:
        raise InvalidInputError("data", "the graph has no next-item pairs (export it with gnn.export from a "
                                        "dataset whose train interactions form sequences)")
    slices = domain_pair_slices(data["item"].domain_ptr, targets)
    total = len(targets)
    per_epoch = max(1, -(-total // batch_size))
    graph = full_batch(data)
    generator = torch.Generator().manual_seed(seed)
    optimiser = _optimiser(model, lr=lr, weight_decay=weight_decay, shared_lr_scale=shared_lr_scale)
    deadline = time.monotonic() + 60 * max_minutes if max_minutes is not None else None
    limit = min(x for x in (max_batches, epochs * per_epoch if epochs is not None else None) if x is not None) \
        if (max_batches is not None or epochs is not None) else None
    start = time.monotonic()
    history: list[dict[str, Any]] = []
    best_score = best_batch = None
    best_state = None
    stale = 0
    if validate is not None:
        best_score, best_batch = validate(model), 0
        best_state = {k: v.clone() for k, v in model.state_dict().items()}
        history.append({"batch": 0, "validation_ndcg@10": round(best_score, 5)})
    batches = pairs_seen = 0
    loss_value = float("nan")
    model.train()
    while True:
        items = model(graph)["item"]
        loss = items.new_zeros(())
        for lo, hi, index in slices:
            share = max(1, round(batch_size * len(index) / total))
            pick = torch.from_numpy(index[torch.randint(len(index), (share,), generator=generator).numpy()])
            prefix = data.seq_prefix[pick]
            prefix = torch.where(prefix >= 0, prefix - lo, prefix)
            loss = loss + next_item_loss(items[lo:hi], prefix, targets[pick] - lo,
                                         temperature=temperature) * (share / batch_size)
            pairs_seen += share
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"{stage}: the loss became {loss.item()} at batch {batches + 1}; nothing was saved. Lower the "
                f"learning rate (lr={lr}) or check the input features for NaN.")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        batches += 1
        loss_value = float(loss.item())
        if progress is not None:
            progress({"stage": stage, "epoch": (batches - 1) // per_epoch + 1, "batch": batches,
                      "batches_per_epoch": per_epoch, "loss": loss_value,
                      "elapsed_s": round(time.monotonic() - start, 2)})
        finished = (limit is not None and batches >= limit) or (deadline is not None and time.monotonic() >= deadline)
        if validate is None and (batches % eval_every == 0 or finished):
            history.append({"batch": batches, "loss": round(loss_value, 5)})
        if validate is not None and (batches % eval_every == 0 or finished):
            score = validate(model)
            model.train()
            history.append({"batch": batches, "loss": round(loss_value, 5), "validation_ndcg@10": round(score, 5)})
            if score > best_score:
                best_score, best_batch, stale = score, batches, 0
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if patience is not None and stale >= patience:
                    finished = True
        if finished:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    seconds = time.monotonic() - start
    metrics = {"objective": "next_item", "seconds": round(seconds, 2), "batches": batches,
               "epochs": round(batches / per_epoch, 3), "pairs": pairs_seen,
               "pairs_per_s": round(pairs_seen / max(seconds, 1e-9), 1), "final_loss": round(loss_value, 5),
               "peak_rss_mib": peak_rss_mib(), "full_graph_nodes": sum(int(data[nt].num_nodes) for nt in data.node_types)}
    if validate is not None:
        metrics.update({"best_batch": best_batch, "best_validation_ndcg@10": round(best_score, 5),
                        "stopped_early": bool(patience is not None and stale >= patience)})
    model.eval()
    return metrics, history


OBJECTIVES = ("next_item", "link")


def _run(model: GraphEncoder, data: HeteroData, *, stage: str, config: dict[str, Any],
         output_dir: Path | str | None, threads: int | None, objective: str, **train_kwargs: Any) -> TrainResult:
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(train_kwargs["seed"])
        train = _train_next_item if objective == "next_item" else _train
        metrics, history = train(model, data, stage=stage, **train_kwargs)
    finally:
        torch.set_num_threads(previous)
    result = TrainResult(model=model, config=config, metrics=metrics, history=history)
    if output_dir is not None:
        result.save_to_directory(output_dir)
    logger.info("%s done: %s", stage, metrics)
    return result


def _train_kwargs(objective: str, *, epochs, max_minutes, max_batches, seed, batch_size, lr, weight_decay,
                  num_neighbors, num_negatives, item_loss_weight, temperature, validate, eval_every,
                  patience, shared_lr_scale: float = 1.0) -> dict[str, Any]:
    """The options of ``objective``'s training loop (the others do not apply to it)."""
    if objective not in OBJECTIVES:
        raise InvalidInputError("objective", f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if not 0.0 <= shared_lr_scale <= 1.0:
        raise InvalidInputError("shared_lr_scale", f"must be in [0, 1], got {shared_lr_scale}")
    common = dict(epochs=epochs, max_minutes=max_minutes, max_batches=max_batches, seed=seed, batch_size=batch_size,
                  lr=lr, weight_decay=weight_decay, shared_lr_scale=shared_lr_scale)
    if objective == "link":
        return {**common, "num_neighbors": tuple(num_neighbors), "num_negatives": num_negatives,
                "item_loss_weight": item_loss_weight}
    if eval_every < 1:
        raise InvalidInputError("eval_every", f"must be >= 1, got {eval_every}")
    return {**common, "temperature": temperature, "validate": validate, "eval_every": eval_every,
            "patience": patience}


def _config(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k != "validate"} | {"early_stopping": kwargs.get("validate") is not None}


def pretrain(data: HeteroData, model_name: str = "lightgcn", *, objective: str = "next_item",
             epochs: int | None = None, max_minutes: float | None = None, max_batches: int | None = None,
             seed: int = 0, dim: int = 64, num_layers: int = 2, batch_size: int = 1024,
             num_neighbors: Sequence[int] = (10, 5), num_negatives: int = 4, lr: float = 0.001,
             weight_decay: float = 0.0, item_loss_weight: float = 1.0, temperature: float = 0.07,
             validate: Validate | None = None, eval_every: int = 25, patience: int | None = 4,
             text_init: bool = True, text_hidden: int = 0, progress: Progress | None = None,
             output_dir: Path | str | None = None, threads: int | None = 1) -> TrainResult:
    """Self-supervised pretraining of a registered encoder on ``data`` (one or several domains).

    ``objective``: ``next_item`` (default; :mod:`gnn.objectives`, full-graph forward, softmax over
    each domain's items) or ``link`` (BPR link prediction on sampled, bounded subgraphs with in-domain
    negatives; the option for graphs too large for a full-graph forward).

    Example:
        >>> data = export_domains(["amazon18_games", "amazon14_office"], data_dir=DATA)
        >>> result = pretrain(data, "lightgcn", max_batches=200, seed=0)
        >>> result.metrics["pairs_per_s"]
    """
    torch.manual_seed(seed)
    model = build_model(model_name, num_nodes={nt: data[nt].num_nodes for nt in data.node_types},
                        text_dim=int(data["item"].x.shape[1]), dim=dim, num_layers=num_layers, text_hidden=text_hidden)
    if text_init:
        model.init_text_projection(data["item"].x)
    kwargs = _train_kwargs(objective, epochs=epochs, max_minutes=max_minutes, max_batches=max_batches, seed=seed,
                           batch_size=batch_size, lr=lr, weight_decay=weight_decay, num_neighbors=num_neighbors,
                           num_negatives=num_negatives, item_loss_weight=item_loss_weight, temperature=temperature,
                           validate=validate, eval_every=eval_every, patience=patience)
    config = {"stage": "pretrain", "model": model_name, "objective": objective, "dim": dim, "num_layers": num_layers,
              "text_init": text_init, "text_hidden": text_hidden, "domains": list(getattr(data, "domains", [])), **_config(kwargs)}
    return _run(model, data, stage="pretrain", config=config, output_dir=output_dir, threads=threads,
                objective=objective, progress=progress, **kwargs)


def finetune(pretrained: TrainResult | GraphEncoder | None, target: HeteroData, *, model_name: str | None = None,
             objective: str = "next_item", epochs: int | None = None, max_minutes: float | None = None,
             max_batches: int | None = None, seed: int = 0, dim: int = 64, num_layers: int = 2,
             batch_size: int = 1024, num_neighbors: Sequence[int] = (10, 5), num_negatives: int = 4,
             lr: float = 0.001, weight_decay: float = 0.0, item_loss_weight: float = 1.0, temperature: float = 0.07,
             validate: Validate | None = None, eval_every: int = 25, patience: int | None = 4,
             text_init: bool = True, text_hidden: int = 0, shared_lr_scale: float = 1.0,
             progress: Progress | None = None, output_dir: Path | str | None = None,
             threads: int | None = 1) -> TrainResult:
    """Train an encoder on ``target`` starting from ``pretrained``'s shared weights.

    ``pretrained`` is a :class:`TrainResult`, a :class:`GraphEncoder` (e.g. ``GraphEncoder.load``)
    or ``None`` (training from scratch; then ``model_name`` is required, and with ``text_init`` the
    text projection starts as the target's whitening, like :func:`pretrain`'s). The new model has the
    pretrained one's kind, dimension and layers and fresh ID embeddings sized for ``target``.
    ``validate`` (e.g. :func:`holdout_validator` on a train-only holdout) turns on early stopping
    for the ``next_item`` objective: every ``eval_every`` batches, stop after ``patience`` checks
    without a gain, keep the best state. ``shared_lr_scale`` (in [0, 1]) scales the learning rate of
    the shared weights (everything but the ID embeddings; 0 freezes them), so that fine-tuning keeps
    more of what pretraining learned; 1 (the default) trains them like the rest.
    """
    source = pretrained.model if isinstance(pretrained, TrainResult) else pretrained
    if source is not None:
        model_name, dim, num_layers, text_hidden = source.name, source.dim, source.num_layers, source.text_hidden
    elif model_name is None:
        raise InvalidInputError("model_name", "needed when there is no pretrained model")
    torch.manual_seed(seed)
    model = build_model(model_name, num_nodes={nt: target[nt].num_nodes for nt in target.node_types},
                        text_dim=int(target["item"].x.shape[1]), dim=dim, num_layers=num_layers, text_hidden=text_hidden)
    if source is not None:
        model.load_shared(source.shared_state_dict())
    elif text_init:
        model.init_text_projection(target["item"].x)
    kwargs = _train_kwargs(objective, epochs=epochs, max_minutes=max_minutes, max_batches=max_batches, seed=seed,
                           batch_size=batch_size, lr=lr, weight_decay=weight_decay, num_neighbors=num_neighbors,
                           num_negatives=num_negatives, item_loss_weight=item_loss_weight, temperature=temperature,
                           validate=validate, eval_every=eval_every, patience=patience,
                           shared_lr_scale=shared_lr_scale)
    config = {"stage": "finetune" if source is not None else "scratch", "model": model_name, "objective": objective,
              "dim": dim, "text_init": text_init and source is None, "num_layers": num_layers, "text_hidden": text_hidden,
              "domains": list(getattr(target, "domains", [])), **_config(kwargs)}
    return _run(model, target, stage=config["stage"], config=config, output_dir=output_dir, threads=threads,
                objective=objective, progress=progress, **kwargs)


@torch.no_grad()
def item_embeddings(model: GraphEncoder, data: HeteroData) -> np.ndarray:
    """Every item's embedding ``[num_items, dim]`` from one full-graph forward pass."""
    model.eval()
    return model(full_batch(data))["item"].numpy()


@dataclass
class SourceSelection:
    """The outcome of :func:`select_sources`: validation NDCG@10 per candidate and the winner."""

    selected: str
    scores: dict[str, dict[str, float]]
    gains: dict[str, float]
    pretrained: dict[str, TrainResult]
    protocol: dict[str, Any]
    #: candidate -> the fine-tuning's validation history (``{"batch", "loss", "validation_ndcg@10"}`` rows)
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def select_sources(target_dataset, candidates: Mapping[str, HeteroData | None], *, target_features: np.ndarray,
                   model_name: str = "hetero_sage", pretrain_kwargs: dict[str, Any] | None = None,
                   finetune_kwargs: dict[str, Any] | None = None, holdout_fraction: float = 0.2, seed: int = 0,
                   progress: Progress | None = None,
                   reuse: Mapping[str, TrainResult] | None = None) -> SourceSelection:
    """Pick the source subset whose pretraining helps the target most on a train-only holdout.

    Args:
        target_dataset: the loaded target dataset (``train`` interactions with positions or times).
        candidates: name -> source graph to pretrain on (``None``: no source, training from scratch).
        target_features: the target's item text features (dataset item order).
        pretrain_kwargs / finetune_kwargs: budgets etc. for :func:`pretrain` / :func:`finetune`.
        reuse: candidate name -> an already pretrained model (same budget), which is not pretrained again.

    Returns:
        The selection with NDCG@10 / HR@10 on the holdout per candidate, the gain of each over
        ``none`` (relative NDCG@10; only when ``none`` is a candidate) and the pretrained models.
    """
    from kg_builder.evaluation.titles import rank_metrics, user_sequences

    from .export import export_dataset, holdout_last_train

    if not candidates:
        raise InvalidInputError("candidates", "need at least one candidate source subset")
    held = holdout_last_train(target_dataset, fraction=holdout_fraction, seed=seed)
    graph = export_dataset(held, features=target_features)
    sequences = user_sequences(held, "holdout")
    validate = holdout_validator(graph, sequences)
    scores: dict[str, dict[str, float]] = {}
    histories: dict[str, list[dict[str, Any]]] = {}
    pretrained: dict[str, TrainResult] = {}
    for name, source in candidates.items():
        base = None
        if source is not None and name in (reuse or {}):
            base = pretrained[name] = reuse[name]
        elif source is not None:
            base = pretrain(source, model_name, seed=seed, progress=progress, **(pretrain_kwargs or {}))
            pretrained[name] = base
        options = dict(finetune_kwargs or {})
        if options.get("objective", "next_item") == "next_item":
            options.setdefault("validate", validate)
        tuned = finetune(base, graph, model_name=model_name, seed=seed, progress=progress, **options)
        histories[name] = tuned.history
        E = item_embeddings(tuned.model, graph)
        E = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
        scores[name] = {k: round(v, 4) for k, v in rank_metrics(E, sequences).items()}
        logger.info("source subset %s: holdout %s", name, scores[name])
    selected = max(scores, key=lambda n: scores[n]["ndcg@10"])
    gains = {}
    if "none" in scores and scores["none"]["ndcg@10"] > 0:
        base_score = scores["none"]["ndcg@10"]
        gains = {n: round(s["ndcg@10"] / base_score - 1.0, 4) for n, s in scores.items()}
    protocol = {"validation": f"last train item of {holdout_fraction:.0%} of the target's users (>= 2 train items), "
                              "removed from the graph; the valid/test split is never used",
                "holdout_users": len(sequences.users), "metric": "ndcg@10 (full ranking, history excluded)"}
    return SourceSelection(selected=selected, scores=scores, gains=gains, pretrained=pretrained, protocol=protocol,
                           histories=histories)


__all__ = ["SourceSelection", "TrainResult", "TrainingDivergedError", "finetune", "item_embeddings", "pretrain",
           "select_sources"]
