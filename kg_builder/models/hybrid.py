"""Hybrid KG-completion ranker: structural ComplEx-N3 scores fused with entity-text similarity.

For a query ``(h, r, ?)`` (or ``(?, r, t)``, asked as ``(t, r⁻¹, ?)``) every entity ``e`` gets

    score(e) = log_softmax(ComplEx(h, r, ·))[e] + w[r, direction] · cos(text(h), text(e))

where ``text(x)`` is the frozen MiniLM embedding (:class:`~kg_builder.models.encoder.TextEncoder`)
of ``"name: description"``, the same entity text the dense bi-encoder reads. ComplEx knows the
graph's structure but nothing about entities with few edges; the text knows that *run* and *runner*
are derivationally related, or that a *bass* is a member of *Micropterus*, with no training at all.
Where the structure is rich (UMLS) the fitted weights go to zero and the ranker is ComplEx.

**Fitting.** One weight per relation and direction, picked from :data:`WEIGHT_GRID` by filtered MRR
on a fit split (dev), the rank of every query computed for every grid weight in one scoring pass.
Relations with fewer than ``min_queries`` queries in the fit set take the weight that is best over
all queries. Fitting reads ComplEx and MiniLM only; nothing is trained (about 5 minutes on WN18RR,
almost all of it embedding 40,943 entity texts on 2 cores).

**No leakage on the fit split.** The weights are fitted three times: on all fit queries, and on each
of two folds (a query's fold is a hash of the query). Scoring the fit split itself
(:meth:`HybridKGModel.scorer_for`) uses *cross-fitting*: a query of fold 0 is scored with the
weights fitted on fold 1 and vice versa, so no dev query influences its own weights. Other splits
(test) use the weights fitted on all of dev. The protocol string of ``kgforge eval kgc`` says which.

Saved as a folder (:mod:`kg_builder.models.saved`): ``config.json`` (structural model name, weights,
fit metrics) and ``model.safetensors`` (the entity text embeddings, ``[num_entities, 384]``). The
structural model is loaded by name from the same models folder; the entity sets must agree.

Shapes:
    score(queries: Sequence[Query]) -> ndarray [len(queries), num_entities]
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kg_builder.datasets import Dataset, TripleRecord
from kg_builder.datasets.text import name_and_description
from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.models.saved import load_folder, resolve_folder, save_folder
from kg_builder.models.structural import ComplEx
from kg_builder.ranking import Query, answer_index, realistic_rank
from kg_builder.settings import Settings

KIND = "hybrid-structural-text"
WEIGHT_GRID: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
DESCRIPTION_CHARS = 200
ALL, FOLDS = "all", ("fold0", "fold1")

Weights = dict[str, float]  # "relation|tail" or "relation|head" -> weight; "*" -> the default


def default_model_name(dataset: str) -> str:
    return f"hybrid-{dataset}"


def train_command(dataset: str | None) -> str:
    return f"kgforge train hybrid --dataset {dataset or 'DATASET'}"


def query_key(query: Query) -> str:
    return f"{query.relation}|{'head' if query.inverse else 'tail'}"


def query_fold(query: Query) -> int:
    """0 or 1, a stable hash of the query (the same in every process)."""
    return zlib.crc32(f"{query.entity}\t{query.relation}\t{int(query.inverse)}".encode()) % 2


def entity_texts(dataset: Dataset, entity_ids: Sequence[str]) -> list[str]:
    records = {e.id: e for e in dataset.entities}
    return [name_and_description(records[i].name, records[i].description, DESCRIPTION_CHARS) for i in entity_ids]


class HybridKGModel:
    """ComplEx + frozen-text fusion (see the module docstring).

    Args:
        structural: the trained ComplEx model.
        text_embeddings: ``[num_entities, dim]`` L2-normalised rows, in ``structural.entity_ids`` order.
        weights: ``{"all": Weights, "fold0": Weights, "fold1": Weights}``.
        fit_split: the split the weights were fitted on (scored with cross-fitting).
    """

    def __init__(self, structural: ComplEx, text_embeddings: np.ndarray, weights: dict[str, Weights], *,
                 fit_split: str, meta: dict[str, Any] | None = None):
        if text_embeddings.shape[0] != len(structural.entity_ids):
            raise InvalidInputError("text_embeddings", f"has {text_embeddings.shape[0]} rows for "
                                                       f"{len(structural.entity_ids)} entities")
        if set(weights) != {ALL, *FOLDS}:
            raise InvalidInputError("weights", f"needs the keys {ALL}, {', '.join(FOLDS)}")
        self.structural = structural
        self.text = torch.from_numpy(np.ascontiguousarray(text_embeddings, dtype=np.float32))
        self.weights = weights
        self.fit_split = fit_split
        self.meta = dict(meta or {})

    @property
    def entity_ids(self) -> list[str]:
        return self.structural.entity_ids

    # --- scoring ---------------------------------------------------------------------------------
    @torch.no_grad()
    def components(self, queries: Sequence[Query]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ComplEx log-probabilities, text cosine), each ``[len(queries), num_entities]``."""
        structural = torch.log_softmax(torch.as_tensor(self.structural.score(queries), dtype=torch.float32), dim=-1)
        heads = [self.structural.entity_row(q.entity) for q in queries]
        return structural, self.text[heads] @ self.text.T

    def weight(self, query: Query, table: str) -> float:
        weights = self.weights[table]
        return float(weights.get(query_key(query), weights.get("*", 0.0)))

    def score(self, queries: Sequence[Query], *, cross_fit: bool = False) -> np.ndarray:
        """:class:`~kg_builder.evaluation.kgc.Scorer`; ``cross_fit`` scores each query with the weights
        fitted on the other fold (use it on the fit split)."""
        structural, text = self.components(queries)
        tables = [FOLDS[1 - query_fold(q)] if cross_fit else ALL for q in queries]
        w = torch.tensor([self.weight(q, t) for q, t in zip(queries, tables)], dtype=torch.float32)
        return (structural + w[:, None] * text).numpy()

    def scorer_for(self, split: str) -> Callable[[Sequence[Query]], np.ndarray]:
        """The scorer to evaluate ``split`` with: cross-fitted on the fit split, plain elsewhere."""
        cross_fit = split == self.fit_split
        return lambda queries: self.score(queries, cross_fit=cross_fit)

    def describe(self, split: str) -> str:
        how = (f"per-relation weights fitted on {self.fit_split}, 2-fold cross-fitted on it (no query sets its "
               f"own weight)" if split == self.fit_split else f"per-relation weights fitted on {self.fit_split}")
        return (f"hybrid: structural ComplEx-N3 {self.meta.get('structural_model')} log-probabilities + w(relation) x "
                f"frozen MiniLM entity-text cosine, {how}")

    # --- fitting ---------------------------------------------------------------------------------
    @classmethod
    def fit(cls, structural: ComplEx, text_embeddings: np.ndarray, dataset: Dataset, split: str, *,
            grid: Sequence[float] = WEIGHT_GRID, min_queries: int = 20, batch_size: int = 256,
            progress: Callable[[int, int], None] | None = None, meta: dict[str, Any] | None = None) -> HybridKGModel:
        """Pick the weights on ``dataset``'s ``split`` (filtered MRR, both directions)."""
        triples = dataset.triples.get(split)
        if not triples:
            raise InvalidInputError("split", f"{dataset.name} has no {split!r} triples to fit on")
        if not grid or any(w < 0 for w in grid):
            raise InvalidInputError("grid", "needs at least one non-negative weight")
        zero = {ALL: {"*": 0.0}, FOLDS[0]: {"*": 0.0}, FOLDS[1]: {"*": 0.0}}
        model = cls(structural, text_embeddings, zero, fit_split=split, meta=meta)
        queries, ranks = model.grid_ranks(triples, dataset.all_triples(), grid, batch_size=batch_size,
                                          progress=progress)
        keys = [query_key(q) for q in queries]
        folds = np.array([query_fold(q) for q in queries])
        chosen = {ALL: _choose(ranks, keys, np.ones(len(queries), bool), grid, min_queries)}
        for f, name in enumerate(FOLDS):
            chosen[name] = _choose(ranks, keys, folds == f, grid, min_queries)
        model.weights = chosen
        return model

    def grid_ranks(self, triples: Sequence[TripleRecord], known: Sequence[TripleRecord], grid: Sequence[float], *,
                   batch_size: int = 256, progress: Callable[[int, int], None] | None = None
                   ) -> tuple[list[Query], np.ndarray]:
        """Filtered rank of every (query, answer) of ``triples`` under every grid weight: ``[queries, len(grid)]``."""
        column = {e: i for i, e in enumerate(self.entity_ids)}
        answers = answer_index([*known, *triples])
        jobs = [(Query(t.head, t.relation, False), t.tail) for t in triples]
        jobs += [(Query(t.tail, t.relation, True), t.head) for t in triples]
        ranks = np.zeros((len(jobs), len(grid)))
        weights = torch.tensor(list(grid), dtype=torch.float32)
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start:start + batch_size]
            structural, text = self.components([q for q, _ in chunk])
            for j, (query, target) in enumerate(chunk):
                t = column[target]
                others = [column[a] for a in answers[query] if a != target]
                fused = (structural[j][None, :] + weights[:, None] * text[j][None, :]).numpy().astype(np.float64)
                fused[:, others] = -np.inf
                ranks[start + j] = [realistic_rank(row, t) for row in fused]
            if progress:
                progress(min(start + batch_size, len(jobs)), len(jobs))
        return [q for q, _ in jobs], ranks

    # --- persistence -----------------------------------------------------------------------------
    def save(self, directory: Path | str) -> Path:
        return save_folder(Path(directory), kind=KIND,
                           config={"weights": self.weights, "fit_split": self.fit_split, **self.meta},
                           state={"text_embeddings": self.text})

    @classmethod
    def load(cls, name_or_dir: str | Path, *, settings: Settings | None = None) -> HybridKGModel:
        settings = settings or Settings()
        directory, dataset = resolve_folder(name_or_dir, settings, "hybrid-")
        config, state = load_folder(directory, kind=KIND, train_hint=train_command(dataset))
        structural = ComplEx.load(config["structural_model"], settings=settings)
        text = state["text_embeddings"].numpy()
        if text.shape[0] != len(structural.entity_ids) or config.get("num_entities") != len(structural.entity_ids):
            raise KGForgeError(f"hybrid model {directory.name} was fitted for another version of "
                               f"{config['structural_model']}; fit it again with `{train_command(dataset)}`")
        meta = {k: v for k, v in config.items() if k not in {"weights", "fit_split", "kind", "version", "created"}}
        return cls(structural, text, config["weights"], fit_split=config["fit_split"], meta=meta)


def _choose(ranks: np.ndarray, keys: Sequence[str], mask: np.ndarray, grid: Sequence[float],
            min_queries: int) -> Weights:
    """Best grid weight by MRR per key among the ``mask`` rows; ``"*"``: the best over all of them."""
    def best(rows: np.ndarray) -> float:
        mrr = (1.0 / ranks[rows]).mean(axis=0)
        return float(grid[int(np.argmax(mrr))])  # ties go to the smaller weight (grid is ascending)

    rows = np.flatnonzero(mask)
    weights: Weights = {"*": best(rows) if len(rows) else 0.0}
    by_key: dict[str, list[int]] = defaultdict(list)
    for i in rows:
        by_key[keys[i]].append(i)
    for key, idx in sorted(by_key.items()):
        weights[key] = best(np.array(idx)) if len(idx) >= min_queries else weights["*"]
    return weights
