"""Generation evaluation and confidence calibration (issue 3, ``eval generation``).

Protocol (stated in every result):

* The pipeline sees a graph built from the dataset's **training** splits only
  (:meth:`GraphSnapshot.from_dataset`): ``train + dev`` for the evaluation on ``test``, ``train``
  for the evaluation on ``dev``. The held-out split's triples are the truth; the models were trained
  on ``train`` only. Calibration (:func:`calibration_set`): on ``test``, dev heads against train +
  dev less half of each one's dev triples (the truth), so a calibration head misses about as much
  as an evaluated one; on ``dev``, other dev heads against ``train``. On ``test`` the other
  calibration graph's default policy is reported beside it (``calibration_comparison``).
* Source entities are the heads of held-out triples (at most ``max_entities``, sampled with
  ``seed``); the pipeline runs on each (offline mode unless an LLM is passed).
* The confidence model is fitted on the calibration runs (dev heads), one per ablation's feature
  set, exactly as ``kgforge train confidence`` fits the saved one.
* Metrics over the kept triples of the evaluated heads: **precision** (kept triples that are
  held-out truth), **recall** (held-out triples of those heads that were kept), **novelty** (kept
  triples absent from the graph the pipeline saw; with ``skip_known`` on, which is the default,
  the pipeline never re-proposes a known edge, so "absent from the graph" alone is 1.0 by
  construction; :mod:`.novelty` counts what matters instead: new entities, novel true triples and a
  name-match proxy of new-entity precision), **diversity** (entropy in bits of the kept triples' relations and of their targets),
  **candidate recall** (held-out triples among all candidates before the keep policy: the ceiling
  of recall), calibration of the confidence on all candidates (Brier score, expected calibration
  error), and seconds per entity.

Ablations (one row each): ``full`` (utility-ranked knowledge, every generator, voting, the top
fraction kept by the calibrated confidence over every signal); ``no_reranker`` (same candidates,
confidence fitted without the reranker's score); ``no_own_relation`` (confidence fitted without
``log_own``, S's own use of the relation); ``reranker_only`` (kept by the reranker's score
alone, the KG-BERT filter); ``similarity_only`` (knowledge ranked by similarity, not
utility); ``only_<generator>`` (the candidates of one generator, no voting).

``differences``: for each of those rows, the ``full`` ranking's kept precision minus the row's at
the same budget, with a 95 % interval from a paired bootstrap over the evaluated heads
(:func:`precision_difference`): with 40 heads, a few points either way can be chance.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from kg_builder.datasets import Dataset
from kg_builder.errors import InvalidInputError
from kg_builder.graphdb import schema
from kg_builder.llm.base import LLM
from kg_builder.pipeline.confidence import FEATURES, ConfidenceModel, brier, expected_calibration_error
from kg_builder.pipeline.generators import GENERATORS
from kg_builder.pipeline.pipeline import (EntityRun, KnowledgePipeline, PipelineModels, PipelineOptions, ScoredTriple,
                                        candidate_policy)
from kg_builder.pipeline.snapshot import GraphSnapshot

from .novelty import novelty_metrics

Progress = Callable[[int, int, str], None]
Triple = tuple[str, str, str]

WITHOUT_RERANKER = tuple(f for f in FEATURES if f not in ("reranker_logit", "reranker_margin"))
WITHOUT_OWN = tuple(f for f in FEATURES if f != "log_own")


def _heads(dataset: Dataset, split: str, max_entities: int | None, seed: int) -> list[str]:
    heads = sorted({t.head for t in dataset.triples[split]})
    random.Random(seed).shuffle(heads)
    return heads[:max_entities] if max_entities else heads


def _truth(dataset: Dataset, split: str) -> set[Triple]:
    def key(native: str) -> str:
        return schema.graph_key(dataset.name, native)

    return {(key(t.head), t.relation, key(t.tail)) for t in dataset.triples[split]}


def candidate_runs(pipeline: KnowledgePipeline, dataset: Dataset, heads: Sequence[str], *,
                   progress: Progress | None = None, label: str = "") -> list[EntityRun]:
    runs = []
    for i, head in enumerate(heads):
        runs.append(pipeline.candidates(pipeline.snapshot.entities[schema.graph_key(dataset.name, head)]))
        if progress:
            progress(i + 1, len(heads), label)
    return runs


def labelled(runs: Sequence[EntityRun], truth: set[Triple]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Feature matrix, labels (the candidate is held-out truth) and source entity of every candidate."""
    rows = [(c.features, (c.head, c.relation, c.target_id) in truth, c.head) for r in runs for c in r.candidates]
    if not rows:
        return np.zeros((0, len(FEATURES))), np.zeros(0, int), []
    return (np.asarray([f for f, _, _ in rows], float), np.asarray([y for _, y, _ in rows], int),
            [h for _, _, h in rows])


def only_generator(runs: Sequence[EntityRun], generator: str) -> list[EntityRun]:
    """The runs as if ``generator`` had been the only one: its candidates, one vote, its rank only."""
    out = []
    for run in runs:
        kept = []
        for c in run.candidates:
            if generator not in c.generators:
                continue
            features = list(c.features)
            features[FEATURES.index("votes")] = 1.0
            for other in GENERATORS:
                if other != generator:
                    features[FEATURES.index(f"rr_{other}")] = 0.0
            kept.append(c.model_copy(update={"features": features, "generators": [generator], "kept": False,
                                             "confidence": None}))
        out.append(run.model_copy(update={"candidates": kept}))
    return out


def _copy(runs: Sequence[EntityRun]) -> list[EntityRun]:
    return [r.model_copy(update={"candidates": [c.model_copy() for c in r.candidates]}) for r in runs]


def _entropy(values: Sequence[str]) -> float:
    counts = Counter(values)
    total = sum(counts.values())
    return -sum(n / total * math.log2(n / total) for n in counts.values()) if total else 0.0


def score_runs(runs: Sequence[EntityRun], truth: set[Triple], seen: GraphSnapshot) -> dict[str, float]:
    heads = {r.entity.id for r in runs}
    held = {t for t in truth if t[0] in heads}
    kept: list[ScoredTriple] = [c for r in runs for c in r.kept]
    kept_keys = {(c.head, c.relation, c.target_id or f"new:{c.target_name}") for c in kept}
    candidates = {(c.head, c.relation, c.target_id) for r in runs for c in r.candidates}
    hits = len(kept_keys & held)
    kept_confidence = [c.confidence for c in kept if c.confidence is not None]
    all_candidates = [c for r in runs for c in r.candidates if c.confidence is not None]
    probs = np.asarray([c.confidence for c in all_candidates], float)
    labels = np.asarray([(c.head, c.relation, c.target_id) in truth for c in all_candidates], float)
    row = {
        "entities": len(runs), "held_out": len(held), "candidates": sum(len(r.candidates) for r in runs),
        "kept": len(kept), "precision": hits / len(kept) if kept else 0.0, "recall": hits / len(held) if held else 0.0,
        "candidate_recall": len(candidates & held) / len(held) if held else 0.0,
        "entities_with_triples": sum(bool(r.kept) for r in runs),
        "relation_entropy": _entropy([c.relation for c in kept]),
        "target_entropy": _entropy([c.target_id or c.target_name for c in kept]),
        "brier": brier(probs, labels), "ece": expected_calibration_error(probs, labels),
        "mean_kept_confidence": float(np.mean(kept_confidence)) if kept_confidence else float("nan"),
    }
    novelty = novelty_metrics(kept, truth, seen)
    novelty.pop("kept", None)
    row.update({k: v for k, v in novelty.items() if v is not None})
    return row


class GenerationResult(BaseModel):
    dataset: str
    split: str
    calibration_split: str
    protocol: str
    options: dict[str, Any]
    target_precision: float
    floor: float
    rows: dict[str, dict[str, float]]
    pr_curve: list[dict[str, float]]
    recall_matched: dict[str, dict[str, float]]
    differences: dict[str, dict[str, float]] = {}
    calibration_graph: str = "train"
    #: the default policy under each calibration graph fitted (:func:`calibration_set`)
    calibration_comparison: dict[str, dict[str, float]] = {}
    timings: dict[str, float]
    models: dict[str, str | None]


#: variant -> (confidence features, the runs it scores: "utility" or "similarity"); None = rank by a raw signal
VARIANTS: dict[str, tuple[tuple[str, ...] | None, str]] = {
    "full": (FEATURES, "utility"),
    "no_reranker": (WITHOUT_RERANKER, "utility"),
    "no_own_relation": (WITHOUT_OWN, "utility"),
    "similarity_only": (FEATURES, "similarity"),
    "reranker_only": (None, "utility"),
    "graph_rank_only": (None, "utility"),
}
RAW_SIGNAL = {"reranker_only": "reranker_logit", "graph_rank_only": "rr_graph"}


def _scored(runs: Sequence[EntityRun], scores: np.ndarray) -> list[EntityRun]:
    """Copies of ``runs`` whose candidates carry ``scores`` (in candidate order) as confidence."""
    out, i = [], 0
    for run in runs:
        candidates = []
        for c in run.candidates:
            candidates.append(c.model_copy(update={"confidence": float(scores[i]), "kept": False}))
            i += 1
        out.append(run.model_copy(update={"candidates": candidates}))
    return out


def keep_top(runs: Sequence[EntityRun], budget: int, per_entity: int) -> list[EntityRun]:
    """Keep the ``budget`` best candidates over all runs by confidence, at most ``per_entity`` each
    (the equal-budget comparison: every variant keeps the same number of triples)."""
    pool = sorted(((c.confidence or 0.0, i, j) for i, r in enumerate(runs) for j, c in enumerate(r.candidates)),
                  key=lambda x: -x[0])
    taken: Counter[int] = Counter()
    kept = 0
    for _, i, j in pool:
        if kept >= budget:
            break
        if taken[i] >= per_entity:
            continue
        runs[i].candidates[j].kept = True
        taken[i] += 1
        kept += 1
    return list(runs)


def keep_floor(runs: Sequence[EntityRun], floor: float, per_entity: int) -> list[EntityRun]:
    """Keep what clears ``floor``, at most ``per_entity`` per entity (the default policy)."""
    for run in runs:
        ranked = sorted(run.candidates, key=lambda c: -(c.confidence or 0.0))
        for c in ranked[:per_entity]:
            c.kept = (c.confidence or 0.0) >= floor
    return list(runs)


def precision_difference(base: Sequence[EntityRun], other: Sequence[EntityRun], truth: set[Triple], *,
                         samples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Kept precision of ``base`` minus that of ``other`` (the same heads, each with its kept
    triples), with a 95 % percentile interval from a paired bootstrap over heads: ``samples``
    resamples of the heads with replacement, both kept sets read on the same resampled heads. Says
    whether a difference at an equal budget is larger than what 40 heads can tell apart."""
    others = {r.entity.id: r for r in other}
    missing = [r.entity.id for r in base if r.entity.id not in others]
    if missing:
        raise InvalidInputError("other", f"has no run for the heads {missing[:5]}")

    def counts(run: EntityRun) -> tuple[int, int]:
        kept = run.kept
        return len(kept), sum((c.head, c.relation, c.target_id) in truth for c in kept)

    a = np.asarray([counts(r) for r in base], float).reshape(-1, 2)
    b = np.asarray([counts(others[r.entity.id]) for r in base], float).reshape(-1, 2)

    def precision(kept: np.ndarray, hits: np.ndarray) -> np.ndarray:
        return np.divide(hits, kept, out=np.zeros_like(hits), where=kept > 0)

    point = float(precision(a[:, 0].sum(), a[:, 1].sum()) - precision(b[:, 0].sum(), b[:, 1].sum()))
    if not len(a):
        return {"difference": point, "low": point, "high": point, "samples": 0}
    index = np.random.default_rng(seed).integers(0, len(a), size=(samples, len(a)))
    diffs = (precision(a[index, 0].sum(1), a[index, 1].sum(1)) - precision(b[index, 0].sum(1), b[index, 1].sum(1)))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"difference": point, "low": float(low), "high": float(high), "samples": samples}


def label_share(dataset: Dataset, calibration_split: str = "dev") -> float:
    """The share of the calibration heads' unseen truth that the calibration split labels:
    ``|dev| / (|dev| + |every other held-out split on disk|)`` (sizes only; see ``confidence``)."""
    hidden = sum(len(v) for k, v in dataset.triples.items() if k not in ("train", calibration_split))
    labelled = len(dataset.triples[calibration_split])
    return labelled / (labelled + hidden) if labelled else 1.0


#: The graphs a confidence model can be calibrated against (``calibration_graph``).
CALIBRATION_GRAPHS = ("train+dev", "train")


def calibration_set(dataset: Dataset, heads: Sequence[str], graph: str = "train+dev", *,
                    held_fraction: float = 0.5, seed: int = 0) -> tuple[GraphSnapshot, set[Triple], float]:
    """The graph a confidence model is calibrated against, its truth and its labelled share
    (``ConfidenceModel.label_share``), for the calibration ``heads`` (dev heads).

    ``train``: the train triples only; truth is the whole dev split. Each calibration head then
    misses its dev *and* its other held-out (test) triples, about twice the unseen truth of a head
    in a graph of train + dev, which is the graph ``make run``'s job (and the test evaluation) runs
    on; a confidence calibrated there reads high on such a graph.

    ``train+dev`` (the default): the train and dev triples, less a random ``held_fraction`` (at
    least one) of each calibration head's dev triples, which are the truth. A calibration head then
    misses those and its test triples: closer to the density of a head in the graph jobs run on.
    The labelled share is ``held / (held + D * |other held-out| / |dev|)``, where ``D`` is the
    calibration heads' dev triples (split sizes only: the test split's content is never read).
    """
    if graph not in CALIBRATION_GRAPHS:
        raise InvalidInputError("calibration_graph", f"must be one of {list(CALIBRATION_GRAPHS)}; got {graph!r}")
    if not 0.0 < held_fraction < 1.0:
        raise InvalidInputError("held_fraction", f"must be in (0, 1); got {held_fraction}")
    if graph == "train":
        return GraphSnapshot.from_dataset(dataset, ("train",)), _truth(dataset, "dev"), label_share(dataset)
    chosen = set(heads)
    by_head: dict[str, list] = {}
    for t in dataset.triples["dev"]:
        if t.head in chosen:
            by_head.setdefault(t.head, []).append(t)
    rng = random.Random(seed)
    held_out = []
    for head in sorted(by_head):
        triples = sorted(by_head[head], key=lambda t: (t.relation, t.tail))
        rng.shuffle(triples)
        held_out.extend(triples[: max(1, round(held_fraction * len(triples)))])
    held_ids = {(t.head, t.relation, t.tail) for t in held_out}
    snapshot = GraphSnapshot.from_dataset(dataset, ("train", "dev"), exclude=held_ids)
    held_keys = {(schema.graph_key(dataset.name, h), r, schema.graph_key(dataset.name, t)) for h, r, t in held_ids}
    hidden = sum(len(v) for k, v in dataset.triples.items() if k not in ("train", "dev"))
    expected_hidden = sum(len(v) for v in by_head.values()) * hidden / max(len(dataset.triples["dev"]), 1)
    share = len(held_keys) / (len(held_keys) + expected_hidden) if held_keys else 1.0
    return snapshot, held_keys, share


def _calibration_text(graph: str) -> str:
    return ("train + dev less half of each calibration head's dev triples (the truth)" if graph == "train+dev"
            else "train (truth: their dev triples)")


def _variant_scores(name: str, calib: Sequence[EntityRun], runs: Sequence[EntityRun], calib_truth: set[Triple],
                    share: float = 1.0) -> tuple[np.ndarray, ConfidenceModel | None]:
    features, _ = VARIANTS.get(name, (FEATURES, "utility"))
    x_eval = np.asarray([c.features for r in runs for c in r.candidates], float).reshape(-1, len(FEATURES))
    if features is None:
        return x_eval[:, FEATURES.index(RAW_SIGNAL[name])], None
    x, y, groups = labelled(calib, calib_truth)
    model = ConfidenceModel.fit(x, y, features=features, groups=groups, label_share=share)
    return model.predict(x_eval), model


def _curve(scored: Sequence[EntityRun], truth: set[Triple], per_entity: int, held: int,
           points: int = 20) -> list[dict[str, float]]:
    """Precision and recall of the floor policy over a grid of floors (the PR curve)."""
    values = np.asarray(sorted({round(c.confidence or 0.0, 6) for r in scored for c in r.candidates}), float)
    if not len(values):
        return []
    floors = np.unique(np.quantile(values, np.linspace(0.0, 0.995, points)))
    out = []
    for floor in floors[::-1]:
        runs = keep_floor(_reset(scored), float(floor), per_entity)
        kept = [(c.head, c.relation, c.target_id) for r in runs for c in r.kept]
        hits = sum(k in truth for k in kept)
        out.append({"floor": float(floor), "kept": len(kept), "precision": hits / len(kept) if kept else 0.0,
                    "recall": hits / held if held else 0.0})
    return out


def _reset(runs: Sequence[EntityRun]) -> list[EntityRun]:
    return [r.model_copy(update={"candidates": [c.model_copy(update={"kept": False}) for c in r.candidates]})
            for r in runs]


def _at_recall(scored: Sequence[EntityRun], truth: set[Triple], held: int, recalls: Sequence[float],
               per_entity: int) -> dict[str, float]:
    """Precision of the variant's ranking when it first reaches each recall (global order, capped per entity)."""
    pool = sorted(((c.confidence or 0.0, c.head, (c.head, c.relation, c.target_id)) for r in scored
                   for c in r.candidates), key=lambda x: -x[0])
    out: dict[str, float] = {}
    taken: Counter[str] = Counter()
    kept = hits = 0
    goals = sorted(recalls)
    for _, head, key in pool:
        if taken[head] >= per_entity:
            continue
        taken[head] += 1
        kept += 1
        hits += key in truth
        while goals and held and hits / held >= goals[0]:
            out[f"precision_at_recall_{goals[0]:.2f}"] = hits / kept
            goals.pop(0)
    for goal in goals:
        out[f"precision_at_recall_{goal:.2f}"] = float("nan")
    return out


def evaluate_generation(*, dataset: Dataset, models: PipelineModels, split: str = "test", max_entities: int | None = 40,
                        seed: int = 0, options: PipelineOptions | None = None, llm: LLM | None = None,
                        ablations: bool = True, target_precision: float = 0.7,
                        calibration_graph: str | None = None,
                        progress: Progress | None = None) -> GenerationResult:
    """Run the pipeline on held-out heads, calibrate on dev, score the default policy, the PR curve
    over the floor and every ablation at the default policy's kept budget (module docstring).

    ``calibration_graph`` (:func:`calibration_set`): ``train+dev`` by default on ``test``, where the
    evaluated heads run against train + dev; on ``dev`` only ``train`` applies (the evaluated dev
    heads' truth must stay out of every graph). On ``test`` with ablations, the other calibration
    graph is also fitted and its default policy reported in ``calibration_comparison``."""
    started = time.perf_counter()
    if split not in ("dev", "test") or split not in dataset.triples:
        raise InvalidInputError("split", f"must be dev or test and present in {dataset.name} "
                                f"(it has {sorted(dataset.triples)})")
    if "train" not in dataset.triples or "dev" not in dataset.triples:
        raise InvalidInputError("dataset", f"{dataset.name} needs train and dev splits for generation evaluation")
    options = options or PipelineOptions()
    per_entity = options.max_per_entity
    calib_split = "dev"
    graph_name = calibration_graph or ("train" if split == "dev" else "train+dev")
    if split == "dev" and graph_name != "train":
        raise InvalidInputError("calibration_graph", "must be train when the evaluated split is dev: a graph "
                                "with dev triples would hold the evaluated heads' truth")
    eval_graph = GraphSnapshot.from_dataset(dataset, ("train",) if split == "dev" else ("train", "dev"))
    truth = _truth(dataset, split)
    calib_heads = _heads(dataset, calib_split, max_entities, seed)
    # On dev, the evaluated heads must not be the calibration heads: split the dev heads in two.
    heads = _heads(dataset, split, None if split == "dev" else max_entities, seed + 1)
    if split == "dev":
        pool = [h for h in heads if h not in set(calib_heads)]
        if len(pool) < 5:
            calib_heads, pool = calib_heads[: len(calib_heads) // 2], calib_heads[len(calib_heads) // 2:]
        heads = pool[:max_entities] if max_entities else pool
    calib_graph, calib_truth, share = calibration_set(dataset, calib_heads, graph_name, seed=seed)
    timings: dict[str, float] = {}
    runs_by_kind: dict[str, tuple[list[EntityRun], list[EntityRun]]] = {}
    for kind in (["utility", "similarity"] if ablations else ["utility"]):
        opts = options.model_copy(update={"use_utility": kind == "utility", "use_reranker": True})
        clock = time.perf_counter()
        calib = candidate_runs(KnowledgePipeline(calib_graph, models, opts, llm), dataset, calib_heads,
                               progress=progress, label=f"calibrate ({kind})")
        runs = candidate_runs(KnowledgePipeline(eval_graph, models, opts, llm), dataset, heads,
                              progress=progress, label=f"evaluate ({kind})")
        timings[f"{kind}_seconds"] = time.perf_counter() - clock
        timings[f"{kind}_seconds_per_entity"] = timings[f"{kind}_seconds"] / max(len(calib) + len(runs), 1)
        runs_by_kind[kind] = (calib, runs)
    held = len({t for t in truth if t[0] in {r.entity.id for r in runs_by_kind["utility"][1]}})

    calib, runs = runs_by_kind["utility"]
    scores, model = _variant_scores("full", calib, runs, calib_truth, share)
    assert model is not None
    floor = model.floor_for(target_precision)
    full = keep_floor(_scored(runs, scores), floor, per_entity)
    rows: dict[str, dict[str, float]] = {"default": {**score_runs(full, truth, eval_graph), "floor": floor}}
    comparison = {graph_name: {**rows["default"], "label_share": share}}
    if ablations and split == "test":
        # The same evaluated runs under the other calibration graph: does its floor promise what it keeps?
        other = next(g for g in CALIBRATION_GRAPHS if g != graph_name)
        other_graph, other_truth, other_share = calibration_set(dataset, calib_heads, other, seed=seed)
        opts = options.model_copy(update={"use_utility": True, "use_reranker": True})
        other_calib = candidate_runs(KnowledgePipeline(other_graph, models, opts, llm), dataset, calib_heads,
                                     progress=progress, label=f"calibrate ({other})")
        other_scores, other_model = _variant_scores("full", other_calib, runs, other_truth, other_share)
        assert other_model is not None
        other_floor = other_model.floor_for(target_precision)
        other_kept = keep_floor(_scored(runs, other_scores), other_floor, per_entity)
        comparison[other] = {**score_runs(other_kept, truth, eval_graph), "floor": other_floor,
                             "label_share": other_share}
    budget = rows["default"]["kept"]
    curve = _curve(_scored(runs, scores), truth, per_entity, held)
    recalls = (0.10, 0.30, 0.50)
    matched = {"full": _at_recall(_scored(runs, scores), truth, held, recalls, per_entity)}
    variants = list(VARIANTS) if ablations else ["full"]
    singles = [g for g in (options.generators or GENERATORS) if not (g == "llm" and llm is None)]
    kept_runs: dict[str, list[EntityRun]] = {}
    for name in variants + ([f"only_{g}" for g in singles] if ablations else []):
        if name.startswith("only_"):
            generator = name.removeprefix("only_")
            kind_calib, kind_runs = only_generator(calib, generator), only_generator(runs, generator)
        else:
            kind_calib, kind_runs = runs_by_kind[VARIANTS[name][1]]
        try:
            variant_scores, _ = _variant_scores(name, kind_calib, kind_runs, calib_truth, share)
        except Exception as e:  # a generator with no true candidates cannot be calibrated
            rows[name] = {"error": str(e)}  # type: ignore[dict-item]
            continue
        scored = _scored(kind_runs, variant_scores)
        kept_runs[name] = keep_top(_reset(scored), int(budget), per_entity)
        rows[name] = score_runs(kept_runs[name], truth, eval_graph)
        matched[name] = _at_recall(scored, truth, held, recalls, per_entity)
    # Paired bootstrap over heads: the full ranking against each other ranking at the same budget.
    differences = {name: precision_difference(kept_runs["full"], kept, truth, seed=seed)
                   for name, kept in kept_runs.items() if name != "full" and "full" in kept_runs}
    timings["total_seconds"] = time.perf_counter() - started
    protocol = (f"pipeline on {len(heads)} {split} heads of {dataset.name} against a graph of "
                f"{'train' if split == 'dev' else 'train+dev'} triples; confidence calibrated on {len(calib_heads)} "
                f"other dev heads against {_calibration_text(graph_name)} (5-fold out-of-fold predictions choose the "
                f"floor; labelled share of their unseen truth {share:.3f}: other held-out splits count as "
                f"unlabelled, not false); "
                f"{'LLM mode' if llm else 'offline mode'}; default policy: confidence >= the floor that reached "
                f"precision {target_precision:.2f} on the calibration heads ({floor:.3f}), at most {per_entity} per "
                f"entity; every other row keeps the same number of triples ({int(budget)}) by its own ranking, "
                f"at most {per_entity} per entity; precision/recall against held-out {split} triples; novelty "
                f"against the graph the pipeline saw")
    return GenerationResult(
        dataset=dataset.name, split=split, calibration_split=calib_split, protocol=protocol,
        options=options.model_dump(), target_precision=target_precision, floor=floor, rows=rows, pr_curve=curve,
        recall_matched=matched, differences=differences, calibration_graph=graph_name,
        calibration_comparison=comparison, timings=timings,
        models={"structural": "structural-" + dataset.name if models.structural else None,
                "dense": "dense-" + dataset.name if models.dense else None,
                "reranker": "reranker-" + dataset.name if models.reranker else None,
                "relations": "relations-" + dataset.name if models.classifier else None,
                "utility": "utility-" + dataset.name if models.utility else None})


def fit_confidence(*, dataset: Dataset, models: PipelineModels, max_entities: int | None = 60, seed: int = 0,
                   options: PipelineOptions | None = None, llm: LLM | None = None,
                   calibration_graph: str = "train+dev",
                   progress: Progress | None = None) -> tuple[ConfidenceModel, ConfidenceModel, dict[str, Any]]:
    """Fit the saved confidence models (with and without the reranker) on dev heads against
    ``calibration_graph`` (:func:`calibration_set`), in the mode of ``llm`` (offline when None)."""
    mode = "llm" if llm is not None else "offline"
    options = (options or PipelineOptions()).model_copy(update={"use_reranker": True, "use_llm": llm is not None})
    heads = _heads(dataset, "dev", max_entities, seed)
    graph, truth, share = calibration_set(dataset, heads, calibration_graph, seed=seed)
    runs = candidate_runs(KnowledgePipeline(graph, models, options, llm), dataset, heads, progress=progress,
                          label="calibrate")
    x, y, groups = labelled(runs, truth)
    full = ConfidenceModel.fit(x, y, features=FEATURES, groups=groups, mode=mode, label_share=share)
    no_reranker = ConfidenceModel.fit(x, y, features=WITHOUT_RERANKER, groups=groups, mode=mode, label_share=share)
    for model in (full, no_reranker):
        model.meta.update({"domain": dataset.name, "generators": options.generators, "heads": len(heads),
                           "calibration_graph": calibration_graph,
                           "candidate_policy": candidate_policy(options)})
    floors = {f"{p:.2f}": full.floor_for(p) for p in (0.5, 0.6, 0.7, 0.8, 0.9)}
    metrics = {"entities": len(heads), "candidates": int(len(y)), "positives": int(y.sum()), "mode": mode,
               "label_share": share, "calibration_graph": calibration_graph, "candidate_policy": candidate_policy(options),
               "brier_out_of_fold": brier(full.oof_scores, y),
               "ece_out_of_fold": expected_calibration_error(full.oof_scores, y),
               "floors_by_target_precision": floors,
               "coefficients": dict(zip(full.features, full.coef.tolist(), strict=True))}
    return full, no_reranker, metrics


__all__ = ["CALIBRATION_GRAPHS", "GenerationResult", "calibration_set", "evaluate_generation", "fit_confidence", "keep_floor", "keep_top", "only_generator",
           "score_runs"]
