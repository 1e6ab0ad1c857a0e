"""Generation evaluation and confidence calibration (issue 3, ``eval generation``).

Protocol (stated in every result):

* The pipeline sees a graph built from the dataset's **training** splits only
  (:meth:`GraphSnapshot.from_dataset`): ``train`` for calibration on ``dev``; ``train + dev`` for the
  evaluation on ``test``. The held-out split's triples are the truth; the models were trained on
  ``train`` only.
* Source entities are the heads of held-out triples (at most ``max_entities``, sampled with
  ``seed``); the pipeline runs on each (offline mode unless an LLM is passed).
* The confidence model is fitted on the calibration runs (dev heads), one per ablation's feature
  set, exactly as ``kgforge train confidence`` fits the saved one.
* Metrics over the kept triples of the evaluated heads: **precision** (kept triples that are
  held-out truth), **recall** (held-out triples of those heads that were kept), **novelty** (kept
  triples absent from the graph the pipeline saw; with ``skip_known`` on, which is the default,
  the pipeline never re-proposes a known edge, so this is 1.0 by construction and is reported to
  show it), **diversity** (entropy in bits of the kept triples' relations and of their targets),
  **candidate recall** (held-out triples among all candidates before the keep policy: the ceiling
  of recall), calibration of the confidence on all candidates (Brier score, expected calibration
  error), and seconds per entity.

Ablations (one row each): ``full`` (utility-ranked knowledge, every generator, voting, the top
fraction kept by the calibrated confidence over every signal); ``no_reranker`` (same candidates,
confidence fitted without the reranker's score); ``reranker_only`` (kept by the reranker's score
alone, the KG-BERT filter); ``similarity_only`` (knowledge ranked by similarity, not
utility); ``only_<generator>`` (the candidates of one generator, no voting).
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
from kg_builder.llm.base import LLM
from kg_builder.pipeline.confidence import FEATURES, ConfidenceModel, brier, expected_calibration_error
from kg_builder.pipeline.generators import GENERATORS
from kg_builder.pipeline.pipeline import EntityRun, KnowledgePipeline, PipelineModels, PipelineOptions, ScoredTriple, select
from kg_builder.pipeline.snapshot import GraphSnapshot

Progress = Callable[[int, int, str], None]
Triple = tuple[str, str, str]

WITHOUT_RERANKER = tuple(f for f in FEATURES if f != "reranker_logit")


def _heads(dataset: Dataset, split: str, max_entities: int | None, seed: int) -> list[str]:
    heads = sorted({t.head for t in dataset.triples[split]})
    random.Random(seed).shuffle(heads)
    return heads[:max_entities] if max_entities else heads


def _truth(dataset: Dataset, split: str) -> set[Triple]:
    key = f"{dataset.name}:{{}}".format
    return {(key(t.head), t.relation, key(t.tail)) for t in dataset.triples[split]}


def candidate_runs(pipeline: KnowledgePipeline, dataset: Dataset, heads: Sequence[str], *,
                   progress: Progress | None = None, label: str = "") -> list[EntityRun]:
    runs = []
    for i, head in enumerate(heads):
        runs.append(pipeline.candidates(pipeline.snapshot.entities[f"{dataset.name}:{head}"]))
        if progress:
            progress(i + 1, len(heads), label)
    return runs


def labelled(runs: Sequence[EntityRun], truth: set[Triple]) -> tuple[np.ndarray, np.ndarray]:
    rows = [(c.features, (c.head, c.relation, c.target_id) in truth) for r in runs for c in r.candidates]
    if not rows:
        return np.zeros((0, len(FEATURES))), np.zeros(0, int)
    return np.asarray([f for f, _ in rows], float), np.asarray([y for _, y in rows], int)


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
    return {
        "entities": len(runs), "held_out": len(held), "candidates": sum(len(r.candidates) for r in runs),
        "kept": len(kept), "precision": hits / len(kept) if kept else 0.0, "recall": hits / len(held) if held else 0.0,
        "candidate_recall": len(candidates & held) / len(held) if held else 0.0,
        "novelty": (sum(not seen.has(c.head, c.relation, c.target_id or "") for c in kept) / len(kept)) if kept else 0.0,
        "relation_entropy": _entropy([c.relation for c in kept]),
        "target_entropy": _entropy([c.target_id or c.target_name for c in kept]),
        "new_entities": sum(c.target_id is None for c in kept),
        "brier": brier(probs, labels), "ece": expected_calibration_error(probs, labels),
        "mean_kept_confidence": float(np.mean(kept_confidence)) if kept_confidence else float("nan"),
    }


class GenerationResult(BaseModel):
    dataset: str
    split: str
    calibration_split: str
    protocol: str
    options: dict[str, Any]
    rows: dict[str, dict[str, float]]
    timings: dict[str, float]
    models: dict[str, str | None]


def _variant(name: str, calib: Sequence[EntityRun], runs: Sequence[EntityRun], calib_truth: set[Triple],
             truth: set[Triple], seen: GraphSnapshot, options: PipelineOptions, *, reranker: bool) -> dict[str, float]:
    features = FEATURES if reranker else WITHOUT_RERANKER
    x, y = labelled(calib, calib_truth)
    model = ConfidenceModel.fit(x, y, features=features)
    opts = options.model_copy(update={"use_reranker": reranker})
    scored = [select(run, opts, model) for run in _copy(runs)]
    return score_runs(scored, truth, seen)


def evaluate_generation(*, dataset: Dataset, models: PipelineModels, split: str = "test", max_entities: int | None = 40,
                        seed: int = 0, options: PipelineOptions | None = None, llm: LLM | None = None,
                        ablations: bool = True, progress: Progress | None = None) -> GenerationResult:
    """Run the pipeline on held-out heads, calibrate on dev, score each ablation (module docstring)."""
    started = time.perf_counter()
    if split not in ("dev", "test") or split not in dataset.triples:
        raise InvalidInputError("split", f"must be dev or test and present in {dataset.name} "
                                f"(it has {sorted(dataset.triples)})")
    if "train" not in dataset.triples or "dev" not in dataset.triples:
        raise InvalidInputError("dataset", f"{dataset.name} needs train and dev splits for generation evaluation")
    options = options or PipelineOptions()
    calib_split = "dev"
    calib_graph = GraphSnapshot.from_dataset(dataset, ("train",))
    eval_graph = calib_graph if split == "dev" else GraphSnapshot.from_dataset(dataset, ("train", "dev"))
    calib_truth, truth = _truth(dataset, calib_split), _truth(dataset, split)
    calib_heads = _heads(dataset, calib_split, max_entities, seed)
    heads = _heads(dataset, split, max_entities, seed + 1)
    timings: dict[str, float] = {}
    rows: dict[str, dict[str, float]] = {}
    utility_settings = [True, False] if ablations else [True]
    for use_utility in utility_settings:
        opts = options.model_copy(update={"use_utility": use_utility, "use_reranker": True})
        label = "utility" if use_utility else "similarity"
        clock = time.perf_counter()
        calib = candidate_runs(KnowledgePipeline(calib_graph, models, opts, llm), dataset, calib_heads,
                               progress=progress, label=f"calibrate ({label})")
        runs = candidate_runs(KnowledgePipeline(eval_graph, models, opts, llm), dataset, heads,
                              progress=progress, label=f"evaluate ({label})")
        timings[f"{label}_seconds"] = time.perf_counter() - clock
        timings[f"{label}_seconds_per_entity"] = timings[f"{label}_seconds"] / max(len(calib) + len(runs), 1)
        common = (calib_truth, truth, eval_graph, opts)
        if not use_utility:
            rows["similarity_only"] = _variant("similarity_only", calib, runs, *common, reranker=True)
            continue
        rows["full"] = _variant("full", calib, runs, *common, reranker=True)
        if ablations:
            rows["no_reranker"] = _variant("no_reranker", calib, runs, *common, reranker=False)
            reranked = [select(run, opts, None) for run in _copy(runs)]
            rows["reranker_only"] = score_runs(reranked, truth, eval_graph)
            for generator in options.generators:
                if generator == "llm" and llm is None:
                    continue
                single_calib, single = only_generator(calib, generator), only_generator(runs, generator)
                try:
                    rows[f"only_{generator}"] = _variant(f"only_{generator}", single_calib, single, *common,
                                                         reranker=True)
                except Exception as e:  # a generator with no true candidates cannot be calibrated
                    rows[f"only_{generator}"] = {"error": str(e)}  # type: ignore[dict-item]
    timings["total_seconds"] = time.perf_counter() - started
    protocol = (f"pipeline on {len(heads)} {split} heads of {dataset.name} against a graph of "
                f"{'train' if split == 'dev' else 'train+dev'} triples; confidence calibrated on {len(calib_heads)} "
                f"dev heads against train; {'LLM mode' if llm else 'offline mode'}; keep policy: top "
                f"{options.keep_fraction:.0%} of each entity's candidates by calibrated confidence "
                f"(reranker_only: by the reranker's score); "
                f"precision/recall against held-out {split} triples; novelty against the graph the pipeline saw")
    return GenerationResult(
        dataset=dataset.name, split=split, calibration_split=calib_split, protocol=protocol,
        options=options.model_dump(), rows=rows, timings=timings,
        models={"structural": "structural-" + dataset.name if models.structural else None,
                "dense": "dense-" + dataset.name if models.dense else None,
                "reranker": "reranker-" + dataset.name if models.reranker else None,
                "relations": "relations-" + dataset.name if models.classifier else None,
                "utility": "utility-" + dataset.name if models.utility else None})


def fit_confidence(*, dataset: Dataset, models: PipelineModels, max_entities: int | None = 60, seed: int = 0,
                   options: PipelineOptions | None = None,
                   progress: Progress | None = None) -> tuple[ConfidenceModel, ConfidenceModel, dict[str, Any]]:
    """Fit the saved confidence models (with and without the reranker) on dev heads against train."""
    options = (options or PipelineOptions()).model_copy(update={"use_reranker": True})
    graph = GraphSnapshot.from_dataset(dataset, ("train",))
    heads = _heads(dataset, "dev", max_entities, seed)
    runs = candidate_runs(KnowledgePipeline(graph, models, options), dataset, heads, progress=progress,
                          label="calibrate")
    x, y = labelled(runs, _truth(dataset, "dev"))
    full = ConfidenceModel.fit(x, y, features=FEATURES)
    no_reranker = ConfidenceModel.fit(x, y, features=WITHOUT_RERANKER)
    metrics = {"entities": len(heads), "candidates": int(len(y)), "positives": int(y.sum()),
               "brier_in_sample": brier(full.predict(x), y), "ece_in_sample": expected_calibration_error(full.predict(x), y),
               "coefficients": dict(zip(full.features, full.coef.tolist(), strict=True))}
    return full, no_reranker, metrics


__all__ = ["GenerationResult", "evaluate_generation", "fit_confidence", "only_generator", "score_runs"]
