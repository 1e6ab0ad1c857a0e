"""Fitting entry point for the hybrid ranker (:class:`~kg_builder.models.hybrid.HybridKGModel`).

Embeds every entity's text with the frozen MiniLM, fits the per-relation weights on the fit split
(dev by default) and reports that split's metrics under 2-fold cross-fitting, structural-only
metrics beside them for comparison. Nothing is trained; the structural model must exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kg_builder.datasets import Dataset
from kg_builder.evaluation.kgc import evaluate_split
from kg_builder.models.encoder import TextEncoder
from kg_builder.models.hybrid import WEIGHT_GRID, HybridKGModel, default_model_name, entity_texts
from kg_builder.models.saved import model_dir
from kg_builder.models.structural import ComplEx
from kg_builder.models.structural import default_model_name as structural_name
from kg_builder.settings import Settings
from kg_builder.training.dense import git_hash
from kg_builder.training.result import ModelTrainResult

Progress = Callable[[str, int, int], None]  # (phase, done, total)


def fit_hybrid(*, dataset: Dataset, settings: Settings, split: str = "dev", structural: str | None = None,
               name: str | None = None, max_length: int = 48, min_queries: int = 20,
               progress: Progress | None = None, save: bool = True) -> ModelTrainResult:
    """Fit the weights of ``hybrid-<dataset>`` on ``split``; saves the model and ``training.json``."""
    started = time.perf_counter()
    structural = structural or structural_name(dataset.name)
    complex_model = ComplEx.load(structural, settings=settings)
    encoder = TextEncoder(max_length=max_length)
    texts = entity_texts(dataset, complex_model.entity_ids)
    done = 0

    def encoded(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("embedding entity texts", done, len(texts))

    embeddings = encoder.encode(texts, batch_size=256, progress=encoded)
    embed_seconds = time.perf_counter() - started
    meta = {"dataset": dataset.name, "structural_model": structural, "num_entities": len(texts),
            "text_max_length": max_length, "grid": list(WEIGHT_GRID), "min_queries": min_queries}
    model = HybridKGModel.fit(complex_model, embeddings, dataset, split, min_queries=min_queries, meta=meta,
                              progress=(lambda d, t: progress("fitting weights", d, t)) if progress else None)
    fit_seconds = time.perf_counter() - started - embed_seconds
    hybrid = evaluate_split(model.scorer_for(split), dataset, split, entity_ids=model.entity_ids,
                            ranker=model.describe(split))
    alone = evaluate_split(complex_model.score, dataset, split, entity_ids=model.entity_ids,
                           ranker=f"structural ComplEx-N3 {structural}")
    name = name or default_model_name(dataset.name)
    metrics = {"split": split, "protocol": hybrid.protocol,
               "hybrid": hybrid.filtered["both"].as_dict(), "structural_only": alone.filtered["both"].as_dict(),
               "weights": model.weights["all"]}
    model.meta["metrics"] = {split: metrics["hybrid"], f"{split}_structural_only": metrics["structural_only"]}
    result = ModelTrainResult(
        model_name=name, directory=model_dir(settings, name), dataset=dataset.name, seed=0,
        config={"split": split, "structural": structural, "max_length": max_length, "min_queries": min_queries,
                "grid": list(WEIGHT_GRID)},
        metrics=metrics,
        timings={"embed_seconds": embed_seconds, "fit_seconds": fit_seconds,
                 "total_seconds": time.perf_counter() - started},
        epoch_losses=[], stopped_by_budget=False, git_hash=git_hash(), model=model)
    if save:
        model.save(result.directory)
        result.save_to_directory()
    return result
