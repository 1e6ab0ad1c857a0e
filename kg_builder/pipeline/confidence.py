"""Calibrated confidence (DESIGN 4.4): logistic regression over the signals of one candidate triple.

=====================  ==========================================================================
reranker_logit         the KG-BERT-style cross-encoder's logit for (S, R, T)
votes                  distinct voters (generators; each LLM sample group per model counts once:
                       identical answers are one vote)
rr_graph .. rr_llm     1 / best rank of T in that generator's list (0 when it did not propose T)
relation_retrieval     the relation's retrieval score for S (similarity + prior)
relation_probability   the relation classifier's P(R | S)
p_graph                ComplEx's softmax probability of T among all entities for (S, R) (0 when
                       the graph generator did not propose T)
log_range              log(1 + how many edges of R already point at T): the target's prior for R
reranker_margin        the cross-encoder's logit minus its dev-chosen decision threshold (as a logit)
log_joint              log(P(R | S) x p_graph): the relation classifier and ComplEx as one joint
                       probability of (R, T) for S (a product a linear model cannot form itself;
                       log 1e-6 when either is missing)
new_entity             1 when T is a new entity (a name no node has), else 0
log_own                log(1 + how many edges of R S already heads): S's own use of R. Relations S
                       heads hold most of its unseen truth on UMLS (98.9 % of the held-out triples)
                       and less of it on WN18RR (42 %); the filter keeps them first
                       (``relations.RelationSelector``), and this feature lets the calibration
                       weigh a relation the classifier added against one S already uses
=====================  ==========================================================================

**Modes.** A model is fitted in one mode, ``offline`` (no LLM: ``kgforge train confidence``) or
``llm`` (the LLM generator and filter on: ``kgforge train confidence --llm``), saved as
``confidence-<domain>`` or ``confidence-<domain>-llm``, and records its mode; a job loads the
model of its own mode and :meth:`ConfidenceModel.check_mode` refuses any other (an offline model
has never seen an LLM rank, and the LLM model's votes mean something else).

**Unlabelled truth.** The calibration heads' truth is held out of the calibration graph: by
default half of each head's dev triples, in a graph of train + the rest of dev (``train+dev``,
the density of a graph that holds train and dev, as ``make run``'s); or the whole dev split, in a
graph of train only (``train``). See ``evaluation.generation.calibration_set``. When the dataset
has further held-out splits (UMLS's test), their triples are true but absent from both, so the
calibration labels them false. Labelled positives are then a random share ``c`` of the true ones
(``held / (held + D * |other held-out splits| / |dev|)`` with ``D`` the heads' dev triples; with
``train``, ``|dev| / (|dev| + |other held-out splits|)``: split sizes only, never their content),
and, as in positive-unlabelled learning (Elkan & Noto 2008), P(true | x) =
P(labelled | x) / c: :meth:`predict` divides by ``label_share`` (capped at 1) and :meth:`floor_for`
reads precision the same way. Without other held-out splits ``c`` is 1 and nothing changes.

**Floor.** ``fit`` keeps the out-of-fold predictions on the calibration candidates (5 folds by
source entity, so no head is scored by a model that saw it); :meth:`floor_for` turns a target
precision into the lowest confidence whose kept set reached that precision on them, by the 95 %
Wilson lower bound (a few dozen heads are a small sample). The job's keep
policy (``pipeline.select``) writes what clears that floor, capped per entity.

It is fitted on candidates the pipeline generates for the **dev** heads against a graph without
their held-out dev triples (label: the candidate is one of them), so its output is a probability
calibrated on held-out truth (``kgforge train confidence``). A model can be fitted on a subset of
the features (the ablations: without the reranker, one generator only); missing features are
simply not read.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.models.saved import load_folder, model_dir, save_folder
from kg_builder.settings import Settings

KIND = "confidence-lr"
FEATURES = ("reranker_logit", "votes", "rr_graph", "rr_dense", "rr_corpus", "rr_llm", "relation_retrieval",
            "relation_probability", "p_graph", "log_range", "reranker_margin", "log_joint", "new_entity", "log_own")
MODES = ("offline", "llm")
FOLDS = 5


def default_model_name(domain: str, mode: str = "offline") -> str:
    return f"confidence-{domain}" + ("-llm" if mode == "llm" else "")


def train_command(domain: str | None, mode: str = "offline") -> str:
    return f"kgforge train confidence --dataset {domain or 'DATASET'}" + (" --llm" if mode == "llm" else "")


class ModeMismatchError(KGForgeError):
    """A confidence model fitted in one mode was about to score candidates of another."""


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
        self.oof_scores: np.ndarray | None = None
        self.oof_labels: np.ndarray | None = None

    @classmethod
    def fit(cls, matrix: np.ndarray, labels: np.ndarray, *, features: Sequence[str] = FEATURES,
            c: float = 1.0, groups: Sequence[str] | None = None, mode: str = "offline",
            label_share: float = 1.0) -> ConfidenceModel:
        """Fit on ``matrix`` [n, len(FEATURES)] (all columns; ``features`` picks the ones used).

        ``groups`` (the source entity of each row) turns on the out-of-fold predictions that
        :meth:`floor_for` reads; without it the floor comes from in-sample predictions.
        """
        labels = np.asarray(labels, int)
        if labels.size == 0 or labels.min() == labels.max():
            raise KGForgeError("confidence calibration needs both true and false candidates; got "
                               f"{int(labels.sum())} true of {labels.size}")
        if mode not in MODES:
            raise InvalidInputError("mode", f"must be one of {MODES}")
        x = np.asarray(matrix, float)
        model = cls._fit_once(x, labels, features, c)
        held = model.predict(x)
        if groups is not None:
            held = np.zeros(len(labels))
            fold = np.asarray([zlib.crc32(str(g).encode()) % FOLDS for g in groups])
            for k in range(FOLDS):
                test = fold == k
                train = ~test
                if not test.any():
                    continue
                if labels[train].min() == labels[train].max():
                    held[test] = model.predict(x[test])
                else:
                    held[test] = cls._fit_once(x[train], labels[train], features, c).predict(x[test])
        model.oof_scores, model.oof_labels = held.astype(float), labels.astype(float)
        if not 0.0 < label_share <= 1.0:
            raise InvalidInputError("label_share", f"must be in (0, 1]; got {label_share}")
        model.meta = {"examples": int(labels.size), "positives": int(labels.sum()), "mode": mode,
                      "out_of_fold": groups is not None, "label_share": float(label_share)}
        return model

    @classmethod
    def _fit_once(cls, x: np.ndarray, labels: np.ndarray, features: Sequence[str], c: float) -> ConfidenceModel:
        from sklearn.linear_model import LogisticRegression

        columns = [FEATURES.index(f) for f in features]
        x = x[:, columns]
        mean, scale = x.mean(0), x.std(0)
        scale = np.where(scale > 0, scale, 1.0)
        model = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / scale, labels)
        return cls(features, mean, scale, model.coef_[0], float(model.intercept_[0]))

    @property
    def mode(self) -> str:
        return str(self.meta.get("mode", "offline"))

    def check_mode(self, mode: str) -> None:
        """Raise ModeMismatchError unless this model was fitted in ``mode``."""
        if self.mode != mode:
            raise ModeMismatchError(
                f"the confidence model was fitted in {self.mode!r} mode and cannot score {mode!r} candidates; "
                f"train one for this mode with `{train_command(self.meta.get('domain'), mode)}`")

    def floor_for(self, target_precision: float, *, min_kept: int = 10) -> float:
        """The lowest confidence whose kept set (everything at or above it) reached
        ``target_precision`` on the calibration candidates' out-of-fold predictions, by the 95 %
        lower confidence bound of its precision (corrected by :attr:`label_share`); 1.0 (keep
        nothing) when no set of at least ``min_kept`` candidates did."""
        scores, labels = self.oof_scores, self.oof_labels
        if scores is None or not len(scores):
            raise KGForgeError("this confidence model has no calibration predictions to choose a floor from; "
                               "retrain it with `kgforge train confidence`")
        share = self.label_share
        order = np.argsort(-scores, kind="stable")
        hits = np.cumsum(labels[order])
        kept = np.arange(1, len(order) + 1)
        # The one-sided 95 % Wilson lower bound of each prefix's precision, not the point estimate:
        # a floor chosen where 40 heads happened to look precise would overshoot on new entities.
        z = 1.645
        p = hits / kept
        lower = (p + z * z / (2 * kept) - z * np.sqrt(p * (1 - p) / kept + z * z / (4 * kept * kept))) / (1 + z * z / kept)
        precision = np.minimum(lower / share, 1.0)
        ok = np.flatnonzero((precision >= target_precision) & (np.arange(1, len(order) + 1) >= min_kept))
        if not len(ok):
            return 1.0
        return float(min(scores[order][ok[-1]] / share, 1.0))

    @property
    def label_share(self) -> float:
        """The share of the calibration heads' unseen true triples that the calibration labels see
        (the module docstring's "Unlabelled truth"); 1.0 when nothing true was hidden unlabelled."""
        return float(self.meta.get("label_share", 1.0))

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """P(true | features): the logistic regression's P(labelled | features) / :attr:`label_share`."""
        x = np.asarray(matrix, float).reshape(-1, len(FEATURES))[:, self.columns]
        labelled = 1.0 / (1.0 + np.exp(-(((x - self.mean) / self.scale) @ self.coef + self.intercept)))
        return np.minimum(labelled / self.label_share, 1.0)

    def save(self, directory: Path | str) -> Path:
        state = {name: torch.tensor(np.asarray(getattr(self, name), float).reshape(-1), dtype=torch.float64)
                 for name in ("mean", "scale", "coef", "intercept", "oof_scores", "oof_labels")
                 if getattr(self, name) is not None}
        return save_folder(Path(directory), kind=KIND, state=state, config={"features": self.features, **self.meta})

    @classmethod
    def load(cls, name_or_dir: str | Path, *, settings: Settings | None = None) -> ConfidenceModel:
        is_path = isinstance(name_or_dir, Path) or "/" in str(name_or_dir)
        directory = Path(name_or_dir) if is_path else model_dir(settings or Settings(), str(name_or_dir))
        name = directory.name
        mode = "llm" if name.endswith("-llm") else "offline"
        domain = name.removeprefix("confidence-").removesuffix("-llm") if name.startswith("confidence-") else None
        config, state = load_folder(directory, kind=KIND, train_hint=train_command(domain, mode))
        meta = {k: v for k, v in config.items() if k not in {"features", "kind", "version", "created"}}
        model = cls(config["features"], state["mean"].numpy(), state["scale"].numpy(), state["coef"].numpy(),
                    float(state["intercept"][0]), meta=meta)
        if "oof_scores" in state:
            model.oof_scores, model.oof_labels = state["oof_scores"].numpy(), state["oof_labels"].numpy()
        return model


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


__all__ = ["ConfidenceModel", "FEATURES", "MODES", "ModeMismatchError", "brier", "default_model_name", "expected_calibration_error",
           "train_command"]
