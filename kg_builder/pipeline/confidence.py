"""Calibrated confidence (DESIGN 4.4): logistic regression over the signals of one candidate triple.

=====================  ==========================================================================
reranker_logit         the KG-BERT-style cross-encoder's logit for (S, R, T)
votes                  distinct voters (generators; each LLM sample counts once)
rr_graph .. rr_llm     1 / best rank of T in that generator's list (0 when it did not propose T)
relation_retrieval     the relation's retrieval score for S (similarity + prior)
relation_probability   the relation classifier's P(R | S)
=====================  ==========================================================================

It is fitted on candidates the pipeline generates for the **dev** heads against a graph holding
only the train triples (label: the candidate is a dev triple), so its output is a probability
calibrated on held-out truth (``kgforge train confidence``). A model can be fitted on a subset of
the features (the ablations: without the reranker, one generator only); missing features are
simply not read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.models.saved import load_folder, model_dir, save_folder
from kg_builder.settings import Settings

KIND = "confidence-lr"
FEATURES = ("reranker_logit", "votes", "rr_graph", "rr_dense", "rr_corpus", "rr_llm", "relation_retrieval",
            "relation_probability")


def default_model_name(domain: str) -> str:
    return f"confidence-{domain}"


def train_command(domain: str | None) -> str:
    return f"kgforge train confidence --dataset {domain or 'DATASET'}"


class ConfidenceModel:
    """Standardise, then logistic regression, over the named ``features`` (a subset of FEATURES)."""

    def __init__(self, features: Sequence[str], mean: Sequence[float], scale: Sequence[float],
                 coef: Sequence[float], intercept: float, *, meta: dict | None = None):
        unknown = [f for f in features if f not in FEATURES]
        if unknown:
            raise InvalidInputError("features", f"unknown feature(s) {unknown}; valid: {list(FEATURES)}")
        self.features = list(features)
        self.columns = [FEATURES.index(f) for f in self.features]
        self.mean, self.scale = np.asarray(mean, float), np.asarray(scale, float)
        self.coef, self.intercept = np.asarray(coef, float), float(intercept)
        self.meta = dict(meta or {})

    @classmethod
    def fit(cls, matrix: np.ndarray, labels: np.ndarray, *, features: Sequence[str] = FEATURES,
            c: float = 1.0) -> ConfidenceModel:
        """Fit on ``matrix`` [n, len(FEATURES)] (all columns; ``features`` picks the ones used)."""
        from sklearn.linear_model import LogisticRegression

        labels = np.asarray(labels, int)
        if labels.size == 0 or labels.min() == labels.max():
            raise KGForgeError("confidence calibration needs both true and false candidates; got "
                               f"{int(labels.sum())} true of {labels.size}")
        columns = [FEATURES.index(f) for f in features]
        x = np.asarray(matrix, float)[:, columns]
        mean, scale = x.mean(0), x.std(0)
        scale = np.where(scale > 0, scale, 1.0)
        model = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / scale, labels)
        return cls(features, mean, scale, model.coef_[0], float(model.intercept_[0]),
                   meta={"examples": int(labels.size), "positives": int(labels.sum())})

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        x = np.asarray(matrix, float).reshape(-1, len(FEATURES))[:, self.columns]
        return 1.0 / (1.0 + np.exp(-(((x - self.mean) / self.scale) @ self.coef + self.intercept)))

    def save(self, directory: Path | str) -> Path:
        state = {name: torch.tensor(np.asarray(getattr(self, name), float).reshape(-1), dtype=torch.float64)
                 for name in ("mean", "scale", "coef", "intercept")}
        return save_folder(Path(directory), kind=KIND, state=state, config={"features": self.features, **self.meta})

    @classmethod
    def load(cls, name_or_dir: str | Path, *, settings: Settings | None = None) -> ConfidenceModel:
        is_path = isinstance(name_or_dir, Path) or "/" in str(name_or_dir)
        directory = Path(name_or_dir) if is_path else model_dir(settings or Settings(), str(name_or_dir))
        domain = directory.name.removeprefix("confidence-") if directory.name.startswith("confidence-") else None
        config, state = load_folder(directory, kind=KIND, train_hint=train_command(domain))
        meta = {k: v for k, v in config.items() if k not in {"features", "kind", "version", "created"}}
        return cls(config["features"], state["mean"].numpy(), state["scale"].numpy(), state["coef"].numpy(),
                   float(state["intercept"][0]), meta=meta)


def brier(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean((np.asarray(probabilities) - np.asarray(labels)) ** 2)) if len(labels) else float("nan")


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width probability bins, weighted by bin size."""
    p, y = np.asarray(probabilities, float), np.asarray(labels, float)
    if not len(p):
        return float("nan")
    edges = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(y[edges == b].mean() - p[edges == b].mean()) * (edges == b).sum()
                     for b in range(bins) if (edges == b).any()) / len(p))


__all__ = ["ConfidenceModel", "FEATURES", "brier", "default_model_name", "expected_calibration_error",
           "train_command"]
