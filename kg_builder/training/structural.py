"""Training entry point for the structural link predictor (:class:`~kg_builder.models.structural.ComplEx`).

Adagrad with 1-N cross-entropy over all entities, every train triple used in both directions
(reciprocal relations), N3 regularisation, a wall-clock budget checked between batches; dev
metrics (filtered, both directions) at the end, and optionally every ``eval_every`` epochs with the
best-on-dev weights kept (early stopping on dev MRR).

``precision="bf16"`` runs the forward and backward passes under CPU autocast to bfloat16 (the
weights, the optimizer state, the softmax and the evaluation stay float32). The 1-N score matrix
``[batch, rank] @ [rank, entities]`` is almost all of the cost; on the development machines'
AVX512-BF16 cores it is about 3x faster in bfloat16, which is what lets WN18RR and FB15k-237 train
for enough epochs within an hour on 2 cores.

**Incremental updates** (:func:`resume_structural`, ``kgforge train structural --resume``; issue 13).
Every save also writes ``training_state.safetensors`` beside the model: the Adagrad accumulators
of both tables and the trained triples as rows. A resume loads the model and that state, grows
the vocabularies (:meth:`ComplEx.grown`: old rows kept exactly), places each new entity with known
neighbours at the mean of their rows (``init``; ``query`` and ``fresh`` are the alternatives), gives
old rows their accumulators back and placed rows the old rows' mean (so they move at the trained
pace rather than by about ``lr`` per coordinate, as a fresh Adagrad would move every row), and
trains on every current triple (or, with ``replay=k``, on the new triples plus ``k`` x as many
old ones per epoch) for the shorter budget given. The triples not in the saved set are the new
ones (``trained_on.new_triples``). A model saved before this existed resumes with a fresh Adagrad
and says so (use a lower ``lr``). On UMLS (rank 100, 80 % of train then the rest): 40 epochs
from scratch reach dev MRR 0.890; resuming the 80 % model for 10 epochs (a quarter) 0.891, for 5
epochs 0.889; replaying only as many old triples as new ones was worse (0.855-0.886), so every
triple is the default. WN18RR: ``benchmarks/bench_incremental.py``.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from kg_builder.datasets import Dataset
from kg_builder.errors import InvalidInputError
from kg_builder.evaluation.kgc import evaluate_split
from kg_builder.models.saved import model_dir, resolve_folder
from kg_builder.models.structural import ComplEx, default_model_name
from kg_builder.settings import Settings
from kg_builder.training.dense import TrainingError, git_hash, seed_everything
from kg_builder.training.result import ModelTrainResult

log = logging.getLogger(__name__)
TRAINING_STATE = "training_state.safetensors"


def _dev_split(dataset: Dataset) -> str | None:
    return next((s for s in ("dev", "valid") if dataset.triples.get(s)), None)


def train_structural(*, dataset: Dataset, settings: Settings, rank: int = 200, epochs: int = 50,
                     batch_size: int = 500, lr: float = 0.1, regularization: float = 0.05,
                     max_minutes: float = 30.0, eval_every: int | None = None, seed: int = 13,
                     name: str | None = None, progress: Callable[[int, int, float], None] | None = None,
                     save: bool = True, precision: str = "fp32",
                     graph_state: dict[str, Any] | None = None) -> ModelTrainResult:
    """Train ComplEx-N3 on ``dataset``'s train split; ``progress(epoch, epochs, loss)`` after each epoch.

    ``graph_state`` (:func:`kg_builder.training.graph_state.domain_graph_state`, when the triples
    came from the graph) is recorded in the model's ``trained_on`` metadata.
    """
    train = _check(dataset, epochs, batch_size, precision)
    seed_everything(seed)
    started = time.perf_counter()
    model = ComplEx([e.id for e in dataset.entities], [r.id for r in dataset.relations], rank=rank,
                    meta={"dataset": dataset.name, "seed": seed})
    triples = _triple_rows(model, train)
    optimizer = torch.optim.Adagrad(model.parameters(), lr=lr)
    fitted = _fit(model, optimizer, dataset, triples, new=None, replay=None, epochs=epochs, batch_size=batch_size,
                  lr=lr, regularization=regularization, deadline=started + max_minutes * 60, eval_every=eval_every,
                  progress=progress, precision=precision)
    trained_on = _trained_on(dataset, model, triples, graph_state, new_entities=0, new_triples=len(triples))
    config = {"rank": rank, "epochs": epochs, "batch_size": batch_size, "lr": lr, "regularization": regularization,
              "max_minutes": max_minutes, "eval_every": eval_every, "precision": precision}
    return _finish(model, optimizer, dataset, settings, fitted, triples, trained_on, config, name=name, seed=seed,
                   started=started, save=save)


def resume_structural(*, dataset: Dataset, settings: Settings, model: ComplEx | str | None = None,
                      epochs: int = 10, batch_size: int = 500, lr: float = 0.1, regularization: float = 0.05,
                      max_minutes: float = 10.0, eval_every: int | None = None, seed: int = 13,
                      replay: float | None = None, init: str = "neighbours", name: str | None = None,
                      progress: Callable[[int, int, float], None] | None = None, save: bool = True,
                      precision: str = "fp32", graph_state: dict[str, Any] | None = None) -> ModelTrainResult:
    """Continue training a saved ComplEx on ``dataset``'s (grown) train split.

    ``model`` is a loaded model or a saved model's name (default ``structural-<dataset>``). New
    entities and relations get rows (:meth:`ComplEx.grown`); a new entity with known neighbours
    starts at the mean of their rows (``init``, :func:`init_new_entities`). The
    Adagrad accumulators saved with the model are restored (new rows start from the mean of the
    old rows', so they take steps at the trained pace, not a fresh 0.1 per coordinate). ``replay``
    None trains on every current triple each epoch; a number ``k`` trains on the new triples plus
    ``k`` x as many old ones, sampled afresh each epoch (emphasis on the new). Rank is the saved
    model's; the result is saved under ``name`` (default: the model's own name).
    """
    train = _check(dataset, epochs, batch_size, precision)
    if replay is not None and replay < 0:
        raise InvalidInputError("replay", f"must be at least 0, got {replay}")
    if init not in INITS:
        raise InvalidInputError("init", f"must be one of {', '.join(INITS)}, got {init!r}")
    seed_everything(seed)
    started = time.perf_counter()
    if model is None or isinstance(model, str):
        source = model or default_model_name(dataset.name)
        base = ComplEx.load(source, settings=settings)
    else:
        base = model
        source = base.meta.get("name") or default_model_name(dataset.name)
    state = load_training_state(settings, source)
    names = {t.head for t in train} | {t.tail for t in train} | {e.id for e in dataset.entities}
    new_entity_ids = sorted(names - set(base.entity_ids))
    new_relation_ids = [r for r in dict.fromkeys([r.id for r in dataset.relations] + [t.relation for t in train])
                        if r not in base.relation_index]
    model = base.grown(new_entity_ids, new_relation_ids)
    model.meta.update({"dataset": dataset.name, "seed": seed})
    triples = _triple_rows(model, train)
    old_set = _old_triples(state)
    is_new = torch.tensor([(h, r, t) not in old_set for h, r, t in triples.tolist()], dtype=torch.bool) \
        if old_set is not None else torch.ones(len(triples), dtype=torch.bool)
    placed = init_new_entities(model, triples, first_new=len(base.entity_ids), method=init)
    optimizer = torch.optim.Adagrad(model.parameters(), lr=lr)
    restored = _restore_optimizer(optimizer, model, base, state, placed)
    before = {"entities": len(base.entity_ids), "relations": len(base.relation_ids),
              "triples": int(base.meta.get("trained_on", {}).get("triples", 0) or 0)}
    fitted = _fit(model, optimizer, dataset, triples, new=is_new if old_set is not None else None, replay=replay,
                  epochs=epochs, batch_size=batch_size, lr=lr, regularization=regularization,
                  deadline=started + max_minutes * 60, eval_every=eval_every, progress=progress, precision=precision)
    trained_on = _trained_on(dataset, model, triples, graph_state, new_entities=len(new_entity_ids),
                             new_triples=int(is_new.sum()))
    trained_on["resumed_from"] = {**before, "model": str(source), "optimizer_state": restored,
                                  "new_relations": len(new_relation_ids), "placed_by_neighbours": len(placed)}
    config = {"rank": model.rank, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "regularization": regularization, "max_minutes": max_minutes, "eval_every": eval_every,
              "precision": precision, "resume": True, "replay": replay, "init": init}
    return _finish(model, optimizer, dataset, settings, fitted, triples, trained_on, config,
                   name=name or (source if "/" not in str(source) else None), seed=seed,
                   started=started, save=save)


# --- pieces ----------------------------------------------------------------------------------------
def _check(dataset: Dataset, epochs: int, batch_size: int, precision: str) -> list:
    train = dataset.triples.get("train")
    if not train:
        raise InvalidInputError("dataset", f"{dataset.name} has no train triples")
    if epochs < 1 or batch_size < 1:
        raise InvalidInputError("epochs", "epochs and batch size must be positive")
    if precision not in ("fp32", "bf16"):
        raise InvalidInputError("precision", f"must be fp32 or bf16, got {precision!r}")
    return train


def _triple_rows(model: ComplEx, train: list) -> torch.Tensor:
    """``[n, 3]`` long: (head row, forward relation row, tail row) of each distinct train triple."""
    rows = dict.fromkeys((model.entity_row(t.head), model.relation_row(t.relation, False), model.entity_row(t.tail))
                         for t in train)
    return torch.tensor(list(rows), dtype=torch.long).reshape(-1, 3)


def _both_directions(model: ComplEx, triples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
    num_rel = len(model.relation_ids)
    return torch.cat([h, t]), torch.cat([r, r + num_rel]), torch.cat([t, h])


@dataclass
class _Fitted:
    epoch_losses: list[float]
    history: list[dict[str, float]]
    best_epoch: int
    stopped: bool
    train_seconds: float = 0.0


def _fit(model: ComplEx, optimizer: torch.optim.Optimizer, dataset: Dataset, triples: torch.Tensor, *,
         new: torch.Tensor | None, replay: float | None, epochs: int, batch_size: int, lr: float,
         regularization: float, deadline: float, eval_every: int | None,
         progress: Callable[[int, int, float], None] | None, precision: str) -> _Fitted:
    """The training loop (both directions of each triple per epoch; with ``new`` and ``replay``:
    the new triples plus ``replay`` x as many old ones, drawn each epoch)."""
    started = time.perf_counter()
    dev_split = _dev_split(dataset)
    best_mrr, best_state, best_epoch = -1.0, None, 0
    epoch_losses: list[float] = []
    history: list[dict[str, float]] = []
    stopped = False
    new_rows = old_rows = None
    if new is not None and replay is not None:
        new_rows, old_rows = torch.nonzero(new).flatten(), torch.nonzero(~new).flatten()
    model.train()
    for epoch in range(1, epochs + 1):
        if new_rows is not None and old_rows is not None:
            take = min(len(old_rows), int(round(replay * max(len(new_rows), 1))))
            chosen = torch.cat([new_rows, old_rows[torch.randperm(len(old_rows))[:take]]])
            heads, rels, tails = _both_directions(model, triples[chosen])
        else:
            heads, rels, tails = _both_directions(model, triples)
        order = torch.randperm(len(heads))
        total, batches = 0.0, 0
        for start in range(0, len(order), batch_size):
            if time.perf_counter() > deadline:
                stopped = True
                break
            idx = order[start:start + batch_size]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = model.loss(heads[idx], rels[idx], tails[idx], regularization=regularization)
            if not torch.isfinite(loss):
                raise TrainingError(f"non-finite loss in epoch {epoch}; lower --lr (now {lr})")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            batches += 1
        if batches:
            epoch_losses.append(total / batches)
            if progress:
                progress(epoch, epochs, epoch_losses[-1])
        if eval_every and dev_split and (epoch % eval_every == 0 or stopped or epoch == epochs):
            model.eval()
            mrr = evaluate_split(model.score, dataset, dev_split, entity_ids=model.entity_ids).filtered["both"].mrr
            model.train()
            history.append({"epoch": epoch, "dev_mrr": mrr})
            if mrr > best_mrr:
                best_mrr, best_state, best_epoch = mrr, copy.deepcopy(model.state_dict()), epoch
        if stopped:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return _Fitted(epoch_losses, history, best_epoch, stopped, time.perf_counter() - started)


def _finish(model: ComplEx, optimizer: torch.optim.Optimizer, dataset: Dataset, settings: Settings,
            fitted: _Fitted, triples: torch.Tensor, trained_on: dict[str, Any], config: dict[str, Any], *,
            name: str | None, seed: int, started: float, save: bool) -> ModelTrainResult:
    dev_split = _dev_split(dataset)
    metrics: dict[str, Any] = {"epochs_run": len(fitted.epoch_losses),
                               "best_epoch": fitted.best_epoch or len(fitted.epoch_losses),
                               "dev_history": fitted.history}
    train_seconds = time.perf_counter() - started
    if dev_split:
        dev = evaluate_split(model.score, dataset, dev_split, entity_ids=model.entity_ids)
        metrics["dev"] = {"split": dev_split, **dev.as_dict()["metrics"]["filtered"]["both"]}
    name = name or default_model_name(dataset.name)
    result = ModelTrainResult(
        model_name=name, directory=model_dir(settings, name), dataset=dataset.name, seed=seed, config=config,
        metrics={**metrics, "trained_on": trained_on},
        timings={"train_seconds": train_seconds, "total_seconds": time.perf_counter() - started},
        epoch_losses=fitted.epoch_losses, stopped_by_budget=fitted.stopped, git_hash=git_hash(), model=model)
    model.meta.update({"name": name, "metrics": {"dev": metrics.get("dev")}, "timings": result.timings,
                       "config": result.config, "trained_on": trained_on})
    if save:
        model.save(result.directory)
        save_training_state(result.directory, model, optimizer, triples)
        result.save_to_directory()
    return result


def _trained_on(dataset: Dataset, model: ComplEx, triples: torch.Tensor, graph_state: dict[str, Any] | None, *,
                new_entities: int, new_triples: int) -> dict[str, Any]:
    """The graph state a model was trained on (``trained_on`` in its config.json; the entity ids
    are the model's vocabulary, ``vocab.json``)."""
    return {"domain": dataset.name, "triples": len(triples), "entities": len(model.entity_ids),
            "relations": len(model.relation_ids), "source": "graph" if graph_state is not None else "dataset",
            "graph": graph_state, "new_entities": new_entities, "new_triples": new_triples,
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


# --- the training state saved beside the model ---------------------------------------------------
def save_training_state(directory: Path, model: ComplEx, optimizer: torch.optim.Optimizer,
                        triples: torch.Tensor) -> Path:
    """``training_state.safetensors``: the Adagrad accumulators of both tables and the trained
    triples as rows (``[n, 3]`` int64: head row, relation row, tail row), so a resume restores the
    optimizer and knows which triples are new."""
    from safetensors.torch import save_file

    state = {"triples": triples.to(torch.int64).contiguous()}
    for key, param in (("entities", model.entities.weight), ("relations", model.relations.weight)):
        sums = optimizer.state.get(param, {}).get("sum")
        if sums is not None:
            state[f"{key}.state_sum"] = sums.detach().contiguous().cpu()
    path = Path(directory) / TRAINING_STATE
    save_file(state, str(path))
    return path


def load_training_state(settings: Settings, name_or_dir: str | Path) -> dict[str, torch.Tensor] | None:
    """What :func:`save_training_state` wrote, or None (a model saved before resumes existed)."""
    from safetensors.torch import load_file

    directory, _ = resolve_folder(name_or_dir, settings, "structural-")
    path = directory / TRAINING_STATE
    return load_file(str(path)) if path.exists() else None


def _old_triples(state: dict[str, torch.Tensor] | None) -> set | None:
    """The base model's trained triples, as rows that stay valid in the grown model (old entity
    rows and forward relation rows keep their numbers)."""
    if state is None or "triples" not in state:
        return None
    return {tuple(row) for row in state["triples"].tolist()}


def _restore_optimizer(optimizer: torch.optim.Adagrad, model: ComplEx, base: ComplEx,
                       state: dict[str, torch.Tensor] | None, placed: torch.Tensor) -> bool:
    """Old rows get their saved Adagrad sums back; new entities placed by their neighbours
    (``placed``) the old rows' mean (they move at the trained pace); other new rows start from 0,
    as in a fresh model (they are near zero and must move fast)."""
    if state is None or "entities.state_sum" not in state or "relations.state_sum" not in state:
        log.warning("no saved optimizer state for the resumed model: Adagrad starts afresh (its first steps move "
                    "every trained row by about --lr; consider a lower --lr)")
        return False
    n_e = len(base.entity_ids)
    with torch.no_grad():
        ent = optimizer.state[model.entities.weight]["sum"]
        saved = state["entities.state_sum"]
        ent[:n_e] = saved
        if len(placed) and len(saved):
            ent[placed] = saved.mean(dim=0)
        rel = optimizer.state[model.relations.weight]["sum"]
        rel[model.old_relation_rows(len(base.relation_ids))] = state["relations.state_sum"]
    return True


INITS = ("neighbours", "query", "fresh")


@torch.no_grad()
def init_new_entities(model: ComplEx, triples: torch.Tensor, *, first_new: int,
                      method: str = "neighbours") -> torch.Tensor:
    """Place each new entity (rows from ``first_new``) that has known neighbours; returns their rows.

    ``neighbours`` (default): the mean of its known neighbours' rows (either direction). ``query``:
    the mean of the query vectors pointing at it (for ``(h, r, e)`` the vector ``q(h, r)`` ComplEx
    scores tails against; for ``(e, r, t)`` the reciprocal ``q(t, r⁻¹)``), rescaled to the trained
    rows' mean norm: the best-scoring row for its own queries, but a hub for every similar query of
    the relation (measured on WN18RR: it lowered dev MRR before any training, so it is not the
    default). ``fresh``: none (the near-zero rows of :meth:`ComplEx.grown`). Entities whose triples
    all touch other new entities keep their near-zero rows in every method.
    """
    if method not in INITS:
        raise InvalidInputError("init", f"must be one of {', '.join(INITS)}, got {method!r}")
    if method == "fresh":
        return torch.zeros(0, dtype=torch.long)
    if first_new >= len(model.entity_ids) or not len(triples):
        return torch.zeros(0, dtype=torch.long)
    h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
    num_rel = len(model.relation_ids)
    # (known head, r) -> new tail, and (known tail, r^-1) -> new head
    into_tail = (t >= first_new) & (h < first_new)
    into_head = (h >= first_new) & (t < first_new)
    sources = torch.cat([h[into_tail], t[into_head]])
    relations = torch.cat([r[into_tail], r[into_head] + num_rel])
    targets = torch.cat([t[into_tail], h[into_head]])
    if not len(targets):
        return torch.zeros(0, dtype=torch.long)
    vectors = model.query_vectors(sources, relations) if method == "query" else model.entities.weight[sources]
    sums = torch.zeros(len(model.entity_ids), vectors.shape[1])
    counts = torch.zeros(len(model.entity_ids))
    sums.index_add_(0, targets, vectors)
    counts.index_add_(0, targets, torch.ones(len(targets)))
    rows = torch.nonzero(counts).flatten()
    mean = sums[rows] / counts[rows, None]
    if method == "query":
        trained_norm = model.entities.weight[:first_new].norm(dim=1).mean()
        mean = mean / mean.norm(dim=1, keepdim=True).clamp_min(1e-12) * trained_norm
    model.entities.weight[rows] = mean
    return rows
