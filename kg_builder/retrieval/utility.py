"""Utility reranking (DESIGN 4.1): rank retrieved documents by how much they would teach us about a
source entity S, not by similarity alone.

Labels come from the graph, no annotation needed: for a source entity S some true neighbours are
held out; a retrieved document is *useful* when it mentions (normalised name match) a held-out
neighbour, i.e. it carries knowledge the graph is missing. A logistic regression over cheap
features learns what such documents look like:

====================  ===========================================================================
dense_similarity      cosine(S's name, document) from the dense index
bm25_score            BM25(S's name, document)
mentions_source       1 when the document names S
entity_mentions       log1p(number of distinct known entities the document names)
neighbour_mentions    log1p(mentions of S's *known* neighbours)  (structural support)
novel_mentions        log1p(mentions of entities that are not S nor its known neighbours) (novelty)
relation_cues         share of the document's tokens that are relation cue words (from the pool)
log_length            log1p(document tokens)
====================  ===========================================================================

Name matching: lower-case word tokens, plural-stripped (:func:`~.bm25.plural_stem`), matched as
token sequences; an entity is named by its full name and, for UMLS-style names such as
``"sign or symptom"``, by each ``" or "`` part of at least ``min_alias_chars`` characters.

Caveat, stated in the evaluation: ``novel_mentions`` and the label share the mention detector, so a
part of the gain over similarity-only ranking comes from that construction; at inference time the
feature is legitimate (it counts entities the graph does not link to S yet).

Measured on UMLS (135 entities, all of them described; 20 hybrid candidates per entity, 30% of
neighbours held out, 30% of entities held out for testing, 5 seeds; about half of the candidates
are useful): test P@5 0.722 +- 0.040 and nDCG@5 0.761 +- 0.034 for the utility ranking against
0.511 / 0.516 for the hybrid similarity order (dense alone 0.476 / 0.491, BM25 alone 0.485 / 0.494).
But ranking by the number of entities a document names, alone, reaches 0.716 / 0.749: UMLS is
dense (52.6 neighbours per entity on average, out of 134), so a document naming many entities
almost always names a held-out neighbour, and the regression learns little beyond that. Dropping
``novel_mentions`` changes nothing (0.719 / 0.755, the model rebuilds it from the other two mention
counts); dropping all three mention features leaves 0.628 / 0.654 (mostly document length).

On the sparse WN18RR (40,943 glosses, 4.4 neighbours per entity; names found in more than 0.5% of
glosses, stopwords and names under 4 characters left out of the matcher; 400 source entities,
7-8% of candidates useful) the utility ranking is on par with similarity, not better: test
P@5 / nDCG@5 0.133 / 0.485 (seed 0) and 0.127 / 0.480 (seed 1) against hybrid 0.120 / 0.469 and
0.122 / 0.482, dense 0.130 / 0.492 and 0.110 / 0.428, BM25 0.115 / 0.472 and 0.117 / 0.429
(mention count alone about 0.10 / 0.30). So these features do not yet beat similarity where the label
is not a by-product of mention density; a cross-encoder or relation-aware labels are the next step.

Entry points: :class:`UtilityReranker` (``run(entity_name, hits, ...) -> RerankResult``) and
:func:`train_utility_reranker` (keyword-only, returns :class:`UtilityTrainingResult`).
"""

from __future__ import annotations

import random
import re
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from kg_builder import __version__
from kg_builder.datasets import Dataset
from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.models.saved import load_folder, save_folder

from .bm25 import plural_stem
from .hybrid import Hit, HybridRetriever

UTILITY_KIND = "utility_reranker"
FEATURES = ("dense_similarity", "bm25_score", "mentions_source", "entity_mentions", "neighbour_mentions",
            "novel_mentions", "relation_cues", "log_length")
_WORD = re.compile(r"\w+")
_CUE_STOPWORDS = frozenset({"of", "to", "with", "in", "is", "a", "an", "the", "by", "for", "on", "as",
                            "from"})


def normalise_tokens(text: str) -> list[str]:
    """Lower-case word tokens with plural endings stripped (the unit of name matching)."""
    return [plural_stem(token) for token in _WORD.findall(text.lower())]


class EntityMentions:
    """Finds which entities a text names.

    Args:
        names: entity id -> display name.
        min_alias_chars: shortest ``" or "`` part used as an alias (full names are always used).
    """

    def __init__(self, names: Mapping[str, str], *, min_alias_chars: int = 4):
        self.names = dict(names)
        self._aliases: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for entity_id, name in self.names.items():
            for alias in self.aliases_of(name, min_alias_chars):
                key = tuple(normalise_tokens(alias))
                if key:
                    self._aliases[key].add(entity_id)
        self._longest = max((len(key) for key in self._aliases), default=0)

    @staticmethod
    def aliases_of(name: str, min_alias_chars: int = 4) -> list[str]:
        parts = [part.strip() for part in re.split(r",|\bor\b", name) if part.strip()]
        extra = [part for part in parts if len(part) >= min_alias_chars] if len(parts) > 1 else []
        return [name, *extra]

    @classmethod
    def from_dataset(cls, dataset: Dataset, **options) -> EntityMentions:
        return cls({entity.id: entity.name for entity in dataset.entities}, **options)

    def find(self, text: str) -> set[str]:
        """Ids of the entities named in ``text``."""
        tokens = normalise_tokens(text)
        found: set[str] = set()
        for start in range(len(tokens)):
            for length in range(1, min(self._longest, len(tokens) - start) + 1):
                ids = self._aliases.get(tuple(tokens[start:start + length]))
                if ids:
                    found |= ids
        return found


def relation_cue_words(relation_texts: Iterable[str]) -> frozenset[str]:
    """Cue words of a relation pool: the normalised content words of the relation texts."""
    return frozenset(token for text in relation_texts for token in normalise_tokens(text)
                     if token not in _CUE_STOPWORDS and len(token) > 2)


class UtilityWeights(BaseModel):
    """A fitted logistic regression over standardised :data:`FEATURES`."""

    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        """P(useful) for each row of ``features`` [n, len(FEATURES)]."""
        z = (features - np.asarray(self.mean)) / np.asarray(self.scale)
        logits = z @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))


class RerankedHit(BaseModel):
    """A hit with its utility; ``similarity_rank`` is its 1-based rank before reranking."""

    doc_id: str
    utility: float
    similarity_rank: int
    features: dict[str, float]
    hit: Hit


class RerankResult(BaseModel):
    entity: str
    hits: list[RerankedHit] = Field(default_factory=list)

    @property
    def doc_ids(self) -> list[str]:
        return [hit.doc_id for hit in self.hits]


class UtilityReranker:
    """Reorders retrieved documents by predicted utility for a source entity.

    Args:
        retriever: the retriever whose corpus the hits come from (exact BM25 / dense features).
        mentions: entity-name matcher for the graph the entity lives in.
        weights: the fitted model (:func:`train_utility_reranker`).
        cue_words: relation cue words, normalised (:func:`relation_cue_words` of the relation pool).

    Example:
        >>> result = train_utility_reranker(dataset=umls, retriever=retriever)
        >>> hits = retriever.run("virus", k=20).hits
        >>> result.reranker.run("virus", hits, entity_id="virus", known_neighbours=graph["virus"]).doc_ids[:3]
    """

    def __init__(self, retriever: HybridRetriever, mentions: EntityMentions, weights: UtilityWeights,
                 cue_words: Iterable[str]):
        self.retriever = retriever
        self.mentions = mentions
        self.weights = weights
        self.cue_words = frozenset(cue_words)
        self._doc_cache: dict[str, tuple[frozenset[str], int, int]] = {}

    def _document_stats(self, position: int) -> tuple[frozenset[str], int, int]:
        """(entities named, tokens, cue tokens) of a corpus document, cached by id and text."""
        document = self.retriever.corpus[position]
        key = f"{document.id}\x00{hash(document.search_text)}"
        if key not in self._doc_cache:
            text = document.search_text
            tokens = normalise_tokens(text)
            cues = sum(token in self.cue_words for token in tokens)
            self._doc_cache[key] = (frozenset(self.mentions.find(text)), len(tokens), cues)
        return self._doc_cache[key]

    def mentioned(self, position: int) -> frozenset[str]:
        return self._document_stats(position)[0]

    def features(self, entity_name: str, positions: Sequence[int], *, entity_id: str | None = None,
                 known_neighbours: Iterable[str] = ()) -> np.ndarray:
        """Feature matrix [len(positions), len(FEATURES)] for documents at corpus ``positions``."""
        known = set(known_neighbours)
        # Without an id, S is whichever known entity its name matches (none for a new entity).
        source_ids = {entity_id} if entity_id else self.mentions.find(entity_name)
        dense = self.retriever.dense.scores(entity_name)
        bm25 = self.retriever.bm25.scores(entity_name)
        rows = []
        for position in positions:
            named, length, cues = self._document_stats(position)
            others = named - source_ids
            rows.append([
                float(dense[position]),
                float(bm25[position]) if bm25.size else 0.0,
                float(bool(named & source_ids)),
                float(np.log1p(len(others))),
                float(np.log1p(len(others & known))),
                float(np.log1p(len(others - known))),
                cues / max(length, 1),
                float(np.log1p(length)),
            ])
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURES))

    def run(self, entity_name: str, hits: Sequence[Hit], *, entity_id: str | None = None,
            known_neighbours: Iterable[str] = ()) -> RerankResult:
        """``hits`` (from this retriever) ordered by predicted utility for the entity, best first."""
        positions = [self.retriever.corpus.index_of(hit.doc_id) for hit in hits]
        if not positions:
            return RerankResult(entity=entity_name)
        matrix = self.features(entity_name, positions, entity_id=entity_id, known_neighbours=known_neighbours)
        utility = self.weights.predict(matrix)
        order = sorted(range(len(hits)), key=lambda i: (-utility[i], i))
        return RerankResult(entity=entity_name, hits=[
            RerankedHit(doc_id=hits[i].doc_id, utility=float(utility[i]), similarity_rank=i + 1,
                        features=dict(zip(FEATURES, map(float, matrix[i]), strict=True)), hit=hits[i])
            for i in order])

    # --- persistence (a model folder: config.json + model.safetensors) ---------------------------
    def save(self, directory: Path | str) -> Path:
        w = self.weights
        state = {name: torch.tensor(getattr(w, name), dtype=torch.float64)
                 for name in ("mean", "scale", "coef")}
        state["intercept"] = torch.tensor([w.intercept], dtype=torch.float64)
        return save_folder(Path(directory), kind=UTILITY_KIND, state=state,
                           config={"features": list(FEATURES), "cue_words": sorted(self.cue_words)})

    @classmethod
    def load(cls, directory: Path | str, *, retriever: HybridRetriever,
             mentions: EntityMentions) -> UtilityReranker:
        config, state = load_folder(Path(directory), kind=UTILITY_KIND,
                                    train_hint="train_utility_reranker(dataset=..., retriever=...)")
        if config.get("features") != list(FEATURES):
            raise KGForgeError(f"{directory} was trained on features {config.get('features')}, this version "
                               f"computes {list(FEATURES)}; retrain it")
        weights = UtilityWeights(mean=state["mean"].tolist(), scale=state["scale"].tolist(),
                                 coef=state["coef"].tolist(), intercept=float(state["intercept"][0]))
        return cls(retriever, mentions, weights, config["cue_words"])


# --- training and evaluation -----------------------------------------------------------------
def neighbours_of(dataset: Dataset) -> dict[str, set[str]]:
    """Undirected neighbour sets over every split's triples (self-loops dropped)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for triple in dataset.all_triples():
        if triple.head != triple.tail:
            graph[triple.head].add(triple.tail)
            graph[triple.tail].add(triple.head)
    return graph


def precision_at(labels: Sequence[int], k: int) -> float:
    return sum(labels[:k]) / k


def ndcg_at(labels: Sequence[int], k: int) -> float | None:
    """Binary-gain nDCG@k; ``None`` when nothing is useful (undefined)."""
    ideal = sorted(labels, reverse=True)[:k]
    idcg = sum(g / np.log2(i + 2) for i, g in enumerate(ideal))
    if idcg == 0:
        return None
    return sum(g / np.log2(i + 2) for i, g in enumerate(labels[:k])) / idcg


class UtilityQuery(BaseModel):
    """One source entity's candidate list (features, labels, and the alternative rankings' scores)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    entity_id: str
    features: Any
    labels: list[int]
    fused_rank: list[int]


class UtilityTrainingResult(BaseModel):
    """What :func:`train_utility_reranker` produced: the reranker, its metrics and how it was made."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    reranker: Any = Field(exclude=True)
    seed: int
    config: dict[str, Any]
    metrics: dict[str, dict[str, float]]
    counts: dict[str, int]
    coefficients: dict[str, float]
    seconds: float
    version: str = __version__
    git_hash: str | None = None

    def save_to_directory(self, directory: Path | str) -> Path:
        """``model/`` (the reranker folder) and ``results.json`` (everything else)."""
        directory = Path(directory)
        self.reranker.save(directory / "model")
        (directory / "results.json").write_text(self.model_dump_json(indent=2))
        return directory


def _git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def build_queries(reranker: UtilityReranker, dataset: Dataset, entity_ids: Sequence[str], *,
                  graph: Mapping[str, set[str]], holdout_fraction: float, candidates: int,
                  rng: random.Random) -> list[UtilityQuery]:
    """For each source entity: hold out neighbours, retrieve ``candidates`` documents by its name,
    label each one useful when it names a held-out neighbour."""
    names = {entity.id: entity.name for entity in dataset.entities}
    corpus = reranker.retriever.corpus
    queries = []
    for entity_id in entity_ids:
        neighbours = sorted(graph[entity_id])
        held = set(rng.sample(neighbours, max(1, round(holdout_fraction * len(neighbours)))))
        known = set(neighbours) - held
        hits = reranker.retriever.run(names[entity_id], k=candidates).hits
        positions = [corpus.index_of(hit.doc_id) for hit in hits]
        matrix = reranker.features(names[entity_id], positions, entity_id=entity_id, known_neighbours=known)
        labels = [int(bool(reranker.mentioned(p) & held)) for p in positions]
        queries.append(UtilityQuery(entity_id=entity_id, features=matrix, labels=labels,
                                    fused_rank=list(range(len(positions)))))
    return queries


def evaluate_rankings(queries: Sequence[UtilityQuery], weights: UtilityWeights, *,
                      k: int) -> dict[str, dict[str, float]]:
    """P@k and nDCG@k of useful documents for the utility ranking and the similarity-only ones
    (hybrid fused order, dense cosine, BM25) and a mention-count heuristic (how many known entities a
    document names), averaged over entities (nDCG over those with at least one useful candidate)."""
    dense_col, bm25_col = FEATURES.index("dense_similarity"), FEATURES.index("bm25_score")
    mentions_col = FEATURES.index("entity_mentions")
    scorers = {
        "utility": lambda q: weights.predict(q.features),
        "hybrid_similarity": lambda q: -np.asarray(q.fused_rank, dtype=float),
        "dense_similarity": lambda q: q.features[:, dense_col],
        "bm25": lambda q: q.features[:, bm25_col],
        "entity_mentions": lambda q: q.features[:, mentions_col],
    }
    metrics: dict[str, dict[str, float]] = {}
    for name, score in scorers.items():
        precisions, ndcgs = [], []
        for query in queries:
            scores = score(query)
            order = sorted(range(len(query.labels)), key=lambda i: (-scores[i], i))
            ranked = [query.labels[i] for i in order]
            precisions.append(precision_at(ranked, k))
            if (value := ndcg_at(ranked, k)) is not None:
                ndcgs.append(value)
        metrics[name] = {f"precision@{k}": float(np.mean(precisions)) if precisions else 0.0,
                         f"ndcg@{k}": float(np.mean(ndcgs)) if ndcgs else 0.0}
    return metrics


def train_utility_reranker(*, dataset: Dataset, retriever: HybridRetriever, holdout_fraction: float = 0.3,
                           test_fraction: float = 0.3, candidates: int = 20, k: int = 5, c: float = 1.0,
                           seed: int = 0, max_entities: int | None = None,
                           mentions: EntityMentions | None = None) -> UtilityTrainingResult:
    """Train and evaluate a :class:`UtilityReranker` on a KG with entity descriptions.

    Source entities (those with at least two neighbours and a name) are split into train and test
    entities; each gets ``holdout_fraction`` of its neighbours held out; candidates are the
    retriever's top ``candidates`` for its name. Metrics on the *test entities* compare the utility
    ranking with similarity-only rankings of the same candidates.

    Args:
        dataset: a loaded KG (UMLS long descriptions or WN18RR glosses) whose corpus ``retriever`` indexes.
        retriever: a :class:`HybridRetriever` over ``corpus_from_dataset(dataset)`` (or a superset).
        max_entities: sample at most this many source entities (WN18RR has 40k).
        mentions: the name matcher (default: every entity name of ``dataset``); pass a filtered one
            where names are common words (WN18RR lemmas such as ``"take"``).

    Returns:
        The reranker, train/test metrics, counts, coefficients, seed, config, seconds, version, git hash.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    if not 0 < holdout_fraction < 1 or not 0 < test_fraction < 1:
        raise InvalidInputError("holdout_fraction", "holdout_fraction and test_fraction must be in (0, 1)")
    rng = random.Random(seed)
    graph = neighbours_of(dataset)
    sources = [e.id for e in dataset.entities if len(graph.get(e.id, ())) >= 2]
    rng.shuffle(sources)
    if max_entities is not None:
        sources = sources[:max_entities]
    n_test = max(1, round(test_fraction * len(sources)))
    test_ids, train_ids = sources[:n_test], sources[n_test:]
    if not train_ids:
        raise InvalidInputError("dataset", f"only {len(sources)} entities with two or more neighbours; "
                                "need more to train (lower test_fraction or use a larger graph)")

    placeholder = UtilityWeights(mean=[0.0] * len(FEATURES), scale=[1.0] * len(FEATURES),
                                 coef=[0.0] * len(FEATURES), intercept=0.0)
    mentions = mentions or EntityMentions.from_dataset(dataset)
    reranker = UtilityReranker(retriever, mentions, placeholder,
                               relation_cue_words(r.text for r in dataset.relations))
    options = {"graph": graph, "holdout_fraction": holdout_fraction, "candidates": candidates, "rng": rng}
    train = build_queries(reranker, dataset, train_ids, **options)
    test = build_queries(reranker, dataset, test_ids, **options)

    features = np.concatenate([q.features for q in train])
    labels = np.concatenate([q.labels for q in train])
    if labels.min() == labels.max():
        raise KGForgeError(f"every training candidate is labelled {int(labels[0])}; the labels carry no "
                           "signal (change holdout_fraction or candidates)")
    scaler = StandardScaler().fit(features)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    model = LogisticRegression(C=c, max_iter=1000).fit((features - scaler.mean_) / scale, labels)
    reranker.weights = UtilityWeights(mean=scaler.mean_.tolist(), scale=scale.tolist(),
                                      coef=model.coef_[0].tolist(), intercept=float(model.intercept_[0]))
    metrics = {f"train/{name}": values
               for name, values in evaluate_rankings(train, reranker.weights, k=k).items()}
    metrics |= {f"test/{name}": values
                for name, values in evaluate_rankings(test, reranker.weights, k=k).items()}
    test_labels = [label for q in test for label in q.labels]
    return UtilityTrainingResult(
        reranker=reranker, seed=seed,
        config={"dataset": dataset.name, "holdout_fraction": holdout_fraction, "test_fraction": test_fraction,
                "candidates": candidates, "k": k, "c": c, "max_entities": max_entities},
        metrics=metrics,
        counts={"train_entities": len(train), "test_entities": len(test), "train_examples": int(labels.size),
                "train_useful": int(labels.sum()), "test_examples": len(test_labels),
                "test_useful": int(sum(test_labels))},
        coefficients=dict(zip(FEATURES, reranker.weights.coef, strict=True)),
        seconds=time.perf_counter() - started, git_hash=_git_hash())


__all__ = ["FEATURES", "EntityMentions", "RerankResult", "RerankedHit", "UtilityReranker",
           "UtilityTrainingResult", "UtilityWeights", "evaluate_rankings", "ndcg_at", "neighbours_of",
           "precision_at", "relation_cue_words", "train_utility_reranker"]
