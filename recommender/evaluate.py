"""The recommender table on Amazon Scientific (issue 12, first step: popularity and the students).

Protocol (printed with every number, in the result's ``protocol``):

* Leave-one-out on ``amazon18_scientific``: each user's history (the train items) + the target of
  the evaluated split (``valid``; ``test`` = history incl. the valid item -> test item, where
  ``Scientific.test.inter`` is on disk). 8,442 users, **full ranking over all 4,385 items**, no
  sampled negatives; **history items excluded**; ties count against the target
  (:mod:`recommender.metrics`, the conventions of :func:`kg_builder.evaluation.titles.rank_metrics`).
* HR@10/20 and NDCG@10/20 averaged over users; student rows are the **mean of the seeds** (default
  0, 1, 2) with the standard deviation (``*_std``) and each seed's numbers.
* Students train on ``Scientific.train.inter`` only, early-stopped on a train-only holdout (never
  on ``valid``); see :mod:`recommender.train` for every default. The same trained model serves both
  splits (RecBole's benchmark-file protocol).

Rows: ``popularity`` (train interaction counts; :func:`gnn.evaluate.popularity_embeddings` scored by
:func:`~kg_builder.evaluation.titles.rank_metrics`), then each student of ``STUDENTS`` with each
knowledge spec of ``KNOWLEDGE`` (``none`` = ID only; ``text`` = the MiniLM title vectors,
projected and added to the ID embedding). ``text`` rather than ``text-whitened``: chosen on the
train-only holdout (SASRec, seed 0: holdout NDCG@10 0.0902 with ``text``, 0.0862 with
``text-whitened``; valid was 0.0807 vs 0.0809, i.e. no difference).

With ``train=True`` every student row is trained with the defaults and saved as
``<model>-<knowledge>-<dataset>-s<seed>`` in the :class:`~recommender.store.RecommenderStore`
(so ``kgforge rec recommend --model sasrec-text-amazon18_scientific-s0`` serves it);
without it the saved versions are loaded (a missing one names the command that trains it).

Run::

    kgforge rec eval --dataset amazon18_scientific --split valid --data-dir ../shared/data --train --json
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kg_builder.errors import InvalidInputError

from .data import load_rec_data
from .metrics import KS, model_metrics

logger = logging.getLogger(__name__)

STUDENTS = ("sasrec", "gru4rec")
KNOWLEDGE = ("none", "text")
METRICS = tuple(f"{m}@{k}" for k in KS for m in ("ndcg", "hr"))
PROTOCOL = ("leave-one-out; full ranking over all items, no sampled negatives; history items excluded; "
            "ties count against the target; HR/NDCG@10/20 averaged over users; students: mean (std) over seeds")


def saved_name(model: str, knowledge: str, dataset: str, seed: int) -> str:
    """The store name of one row's model for one seed."""
    spec = knowledge.replace(":", "_").replace("+", "_").replace("@", "_")
    return f"{model}-{spec}-{dataset}-s{seed}"


def summarise(runs: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": len(runs)}
    for key in METRICS:
        values = np.array([r[key] for r in runs])
        out[key] = round(float(values.mean()), 4)
        out[f"{key}_std"] = round(float(values.std()), 4)
    return out


def evaluate_table(*, dataset: str = "amazon18_scientific", split: str = "valid", data_dir: Path | str,
                   seeds: Sequence[int] = (0, 1, 2), students: Sequence[str] = STUDENTS,
                   knowledge: Sequence[str] = KNOWLEDGE, train: bool = False, store=None,
                   train_kwargs: dict[str, Any] | None = None, cache_dir: Path | None = None, settings=None,
                   progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every row above; returns ``{"protocol": ..., "rows": [...]}``.

    Raises:
        DatasetError: the split is not on disk (a held-out ``test`` without its file).
        RecommenderNotFoundError: ``train=False`` and a row's model was never saved.
    """
    from gnn.evaluate import popularity_embeddings
    from kg_builder.evaluation.titles import rank_metrics

    from .knowledge import build_knowledge
    from .store import default_store
    from .train import train_student

    if not seeds:
        raise InvalidInputError("seeds", "need at least one seed")
    store = store if store is not None else default_store()
    started = time.monotonic()
    data = load_rec_data(dataset, data_dir)
    sequences = data.evaluation(split)
    popularity = popularity_embeddings(data.dataset)
    pop = {}
    for k in KS:
        pop.update(rank_metrics(popularity, sequences, k=k))
    rows: list[dict[str, Any]] = [{"row": "popularity", **{k: round(pop[k], 4) for k in METRICS}}]
    matrices: dict[str, Any] = {}
    for model_name in students:
        for spec in knowledge:
            runs, timings = [], []
            for seed in seeds:
                name = saved_name(model_name, spec, dataset, seed)
                if train:
                    if spec not in matrices:
                        matrices[spec] = build_knowledge(spec, data, cache_dir=cache_dir, settings=settings)
                    if progress:
                        progress({"event": "row", "model": name})
                    result = train_student(data=data, model=model_name, knowledge=matrices[spec], knowledge_spec=spec,
                                           seed=seed, progress=progress, **dict(train_kwargs or {}))
                    meta = store.save(name, result.model, item_ids=data.item_ids, dataset=dataset, knowledge=spec,
                                      train_config=result.config, metrics=result.metrics)
                    student, train_metrics = result.model, {**result.metrics, "saved": f"{name} v{meta.version}"}
                else:
                    saved = store.load(name)
                    if saved.item_ids != data.item_ids:
                        raise InvalidInputError("dataset", f"saved model {name} was trained on other items than "
                                                           f"{dataset} in {data_dir}")
                    student = saved.model
                    train_metrics = {**saved.meta.metrics, "saved": f"{name} v{saved.meta.version}"}
                runs.append(model_metrics(student, sequences))
                timings.append(train_metrics)
            label = f"{model_name} + {spec} knowledge" if spec != "none" else f"{model_name} (ID only)"
            row = {"row": label, "model": model_name, "knowledge": spec, **summarise(runs),
                   "per_seed": [{k: round(v, 4) for k, v in r.items()} for r in runs], "train_metrics": timings}
            logger.info("%s: %s", label, {k: row[k] for k in METRICS})
            rows.append(row)
    protocol = {"dataset": dataset, "split": split, "users": len(sequences.users), "items": data.n_items,
                "ranking": PROTOCOL, "seeds": list(seeds), "trained_here": train,
                "train_data": "train file only; early stopping on a train-only holdout (last train item of 10% of "
                              "users), never on valid",
                "train_kwargs": dict(train_kwargs or {}), "seconds": round(time.monotonic() - started, 1)}
    return {"protocol": protocol, "rows": rows}


__all__ = ["KNOWLEDGE", "STUDENTS", "evaluate_table", "saved_name"]
