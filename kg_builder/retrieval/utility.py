"""Utility reranking (DESIGN 4.1): rank retrieved documents by how much they would teach us about a
source entity S, not by similarity alone.

Labels come from the graph, no annotation needed: for a source entity S some true neighbours are
held out; a retrieved document is *useful* when it mentions (normalised name match) a held-out
neighbour, i.e. it carries knowledge the graph is missing.

The model has two stages, both logistic regressions (so a few seconds of fitting on a CPU):

1. **Missing-neighbour prior** P(e is a neighbour of S the graph lacks), for every entity e a
   candidate document names that is neither S nor a known neighbour of S. It reads the graph around
   S and e (:data:`LINK_FEATURES`: common neighbours, Adamic-Adar, overlap of e's neighbours with
   S's two-hop neighbourhood, e's degree) and the cosine between S's query and e's own document.
2. **Document utility** over :data:`FEATURES`: the similarity features (dense, BM25), the mention
   counts, relation cue words, length, and three aggregates of stage 1 over the document's new
   entities: P(at least one is a missing neighbour) (noisy-or), the best one, their sum.

Why two stages: counting the entities a document names is a strong heuristic on a dense graph
(UMLS: 52.6 neighbours per entity out of 134), and a regression over counts only ties it. Which of
the named entities are *likely* neighbours of S is what separates a useful document from a merely
crowded one, and the graph answers that.

The query S is retrieved with is built by :func:`knowledge_query`: S's name and description plus its
known facts (``"virus causes disease"``), so retrieval uses what the graph already knows about S.

Caveat, stated in the evaluation: the label and the features share the mention detector, so the
utility is "names an entity that is a missing neighbour", which is what the corpus generator reads.

Entity-level split: source entities are split into train and test entities; stage 1 is
cross-fitted (two folds) on the train entities so that stage 2 learns from honest priors.

Measured on UMLS (train-split graph, 135 source entities, 40 held out for testing, 30 % of each
entity's neighbours held out, 20 knowledge-query candidates each, about 55 % useful; seeds 0, 1, 2,
mean +- std; ``kgforge train utility --dataset umls --seed N``): test P@5 / nDCG@5
0.795 +- 0.012 / 0.834 +- 0.028 for the utility ranking against 0.710 +- 0.011 / 0.719 +- 0.018
for counting the entities a document names, 0.512 / 0.498 hybrid similarity, 0.552 / 0.532 dense,
0.500 / 0.490 BM25 (+0.085 P@5 over mention counting; the previous one-stage regression tied it).
About 2 minutes per run on the shared 2-core machine under heavy load (index build excluded).

On the sparse WN18RR (40,943 glosses, filtered name matcher, 1,000 source entities, 300 held out,
about 8 % of candidates useful; seeds 0, 1, 2): 0.172 +- 0.003 / 0.519 +- 0.027 against 0.104 /
0.282 mention counting, 0.138 / 0.387 hybrid, 0.147 / 0.429 dense, 0.122 / 0.354 BM25. Here the
prior leans on the cosine between S's query and the named entity's gloss, not on graph overlap
(WN18RR has about 4.3 train neighbours per entity). 137-176 s per run after the index build.

Entry points: :class:`UtilityReranker` (``run(entity_name, hits, ...) -> RerankResult``),
:func:`knowledge_query` and :func:`train_utility_reranker` (keyword-only, returns
:class:`UtilityTrainingResult`).
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from kg_builder import __version__
from kg_builder.datasets import Dataset
from kg_builder.datasets.text import name_and_description
from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.models.saved import load_folder, save_folder

from .bm25 import plural_stem
from .hybrid import Hit, HybridRetriever

UTILITY_KIND = "utility_reranker"
BASE_FEATURES = ("dense_similarity", "bm25_score", "mentions_source", "entity_mentions", "neighbour_mentions",
                 "novel_mentions", "relation_cues", "log_length")
PRIOR_FEATURES = ("missing_neighbour_any", "missing_neighbour_best", "missing_neighbour_sum")
FEATURES = BASE_FEATURES + PRIOR_FEATURES
LINK_FEATURES = ("common_neighbours", "adamic_adar", "common_share_of_source", "common_share_of_target",
                 "target_degree", "two_hop_overlap", "two_hop_share_of_target", "text_similarity", "has_text")
GRAPH_FILE = "graph.json"
# The description part of a knowledge query: the 300 characters every MiniLM model of kgforge reads.
QUERY_DESCRIPTION_CHARS = 300
MAX_QUERY_FACTS = 12
# Training embeds its queries this many at a time (one batched encoder call; fits the query cache).
QUERY_BATCH = 64
_WORD = re.compile(r"\w+")
_CUE_STOPWORDS = frozenset({"of", "to", "with", "in", "is", "a", "an", "the", "by", "for", "on", "as",
                            "from"})


def normalise_tokens(text: str) -> list[str]:
    """Lower-case word tokens with plural endings stripped (the unit of name matching)."""
    return [plural_stem(token) for token in _WORD.findall(text.lower())]


def fact_text(head: str, relation: str, tail: str) -> str:
    """One graph fact as text: ``fact_text("virus", "causes", "disease") == "virus causes disease"``."""
    return f"{head} {relation.replace('_', ' ')} {tail}"


def knowledge_query(entity_text: str, facts: Sequence[str] = (), *, max_facts: int = MAX_QUERY_FACTS) -> str:
    """The retrieval query for S: what we know about it, not only its name.

    Args:
        entity_text: S as ``"name: description"`` (``EntityInfo.text()``; the name alone when S has
            no description).
        facts: S's known facts (:func:`fact_text` of its graph edges), most relevant first; the
            first ``max_facts`` distinct ones are used (MiniLM reads 256 tokens).

    Returns:
        ``"name: description. Known: fact; fact; ..."`` (``entity_text`` alone without facts).

    Example:
        >>> knowledge_query("virus: a small infectious agent", ["virus causes disease"])
        'virus: a small infectious agent. Known: virus causes disease'
    """
    entity_text = " ".join(entity_text.split())
    if not entity_text:
        raise InvalidInputError("entity_text", "is empty; give at least the entity's name")
    kept: list[str] = []
    for fact in facts:
        fact = " ".join(fact.split())
        if fact and fact not in kept:
            kept.append(fact)
            if len(kept) == max_facts:
                break
    return f"{entity_text}. Known: {'; '.join(kept)}" if kept else entity_text


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
    """A fitted logistic regression over standardised features (either stage)."""

    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float

    @classmethod
    def zeros(cls, n: int) -> UtilityWeights:
        """A model that predicts 0.5 for everything (before training)."""
        return cls(mean=[0.0] * n, scale=[1.0] * n, coef=[0.0] * n, intercept=0.0)

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, *, c: float = 1.0) -> UtilityWeights:
        """Standardise, then fit an L2 logistic regression (sklearn, lbfgs)."""
        from sklearn.linear_model import LogisticRegression

        if labels.size == 0 or labels.min() == labels.max():
            value = int(labels[0]) if labels.size else None
            raise KGForgeError(f"every training example is labelled {value}; the labels carry no signal "
                               "(change holdout_fraction or candidates, or train on more entities)")
        mean = features.mean(axis=0)
        scale = features.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        model = LogisticRegression(C=c, max_iter=2000).fit((features - mean) / scale, labels)
        return cls(mean=mean.tolist(), scale=scale.tolist(), coef=model.coef_[0].tolist(),
                   intercept=float(model.intercept_[0]))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """P(positive) for each row of ``features`` [n, len(coef)]."""
        z = (features - np.asarray(self.mean)) / np.asarray(self.scale)
        logits = z @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        state = {prefix + name: torch.tensor(getattr(self, name), dtype=torch.float64)
                 for name in ("mean", "scale", "coef")}
        state[prefix + "intercept"] = torch.tensor([self.intercept], dtype=torch.float64)
        return state

    @classmethod
    def from_tensors(cls, state: Mapping[str, torch.Tensor], prefix: str = "") -> UtilityWeights:
        return cls(mean=state[prefix + "mean"].tolist(), scale=state[prefix + "scale"].tolist(),
                   coef=state[prefix + "coef"].tolist(), intercept=float(state[prefix + "intercept"][0]))


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


@dataclass
class CandidateParts:
    """What stage 2 needs for one query's candidates, before the stage-1 model is applied.

    Shapes:
        base: [documents, len(BASE_FEATURES)]; link: [len(entities), len(LINK_FEATURES)];
        new_entities[i]: the ids named by document i that are neither S nor known neighbours.
    """

    base: np.ndarray
    new_entities: list[list[str]]
    entities: list[str]
    link: np.ndarray

    def assemble(self, prior: UtilityWeights) -> np.ndarray:
        """The full feature matrix [documents, len(FEATURES)] under the stage-1 model ``prior``."""
        probability = dict(zip(self.entities, prior.predict(self.link).tolist(), strict=True)) if self.entities else {}
        rows = []
        for named in self.new_entities:
            p = np.asarray([probability[e] for e in named], dtype=np.float64)
            rows.append([1.0 - float(np.prod(1.0 - p)), float(p.max()), float(p.sum())] if p.size else [0.0] * 3)
        extra = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(PRIOR_FEATURES))
        return np.hstack([self.base, extra])


class UtilityReranker:
    """Reorders retrieved documents by predicted utility for a source entity.

    Args:
        retriever: the retriever whose corpus the hits come from (exact BM25 / dense features).
        mentions: entity-name matcher for the graph the entity lives in.
        weights: the fitted stage-2 model over :data:`FEATURES` (:func:`train_utility_reranker`).
        cue_words: relation cue words, normalised (:func:`relation_cue_words` of the relation pool).
        prior: the fitted stage-1 model over :data:`LINK_FEATURES` (default: uninformative).
        graph: entity id -> neighbour ids, the graph stage 1 reads around the named entities (the
            training graph; saved with the model).

    Example:
        >>> result = train_utility_reranker(dataset=umls, retriever=retriever)
        >>> query = knowledge_query("virus: a small infectious agent", ["virus causes disease"])
        >>> hits = retriever.run(query, k=20).hits
        >>> result.reranker.run("virus", hits, entity_id="virus", known_neighbours={"disease"},
        ...                     query=query).doc_ids[:3]
    """

    def __init__(self, retriever: HybridRetriever, mentions: EntityMentions, weights: UtilityWeights,
                 cue_words: Iterable[str], *, prior: UtilityWeights | None = None,
                 graph: Mapping[str, Iterable[str]] | None = None):
        if len(weights.coef) != len(FEATURES):
            raise InvalidInputError("weights", f"has {len(weights.coef)} coefficients, expected "
                                               f"{len(FEATURES)} ({', '.join(FEATURES)})")
        self.retriever = retriever
        self.mentions = mentions
        self.weights = weights
        self.cue_words = frozenset(cue_words)
        self.prior = prior or UtilityWeights.zeros(len(LINK_FEATURES))
        self.graph: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in (graph or {}).items()}
        self._doc_cache: dict[str, tuple[frozenset[str], int, int]] = {}
        self._entity_rows: dict[str, int] = {}
        self._entity_rows_size = -1

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

    def _entity_row(self, entity_id: str) -> int | None:
        """The dense-index row of an entity's own document (the first one with that entity id)."""
        corpus = self.retriever.corpus
        if self._entity_rows_size != len(corpus):
            rows: dict[str, int] = {}
            for position, document in enumerate(corpus):
                if document.entity_id and document.entity_id not in rows:
                    rows[document.entity_id] = self.retriever.dense.row_of(document.id)
            self._entity_rows, self._entity_rows_size = rows, len(corpus)
        return self._entity_rows.get(entity_id)

    def link_features(self, source_id: str | None, known: set[str], entities: Sequence[str],
                      query_vector: np.ndarray) -> np.ndarray:
        """Stage-1 features [len(entities), len(LINK_FEATURES)] of (S, e) pairs.

        ``e``'s neighbours never include S itself, so an edge S-e (held out in training, or absent
        at inference) cannot leak into its own prediction.
        """
        graph = self.graph
        two_hop: set[str] = set()
        for z in known:
            two_hop |= graph.get(z, frozenset())
        two_hop.discard(source_id or "")
        embeddings = self.retriever.dense.embeddings
        rows = []
        for entity in entities:
            theirs = graph.get(entity, frozenset())
            if source_id in theirs:
                theirs = theirs - {source_id}
            common = known & theirs
            adamic_adar = sum(1.0 / np.log(max(len(graph.get(z, ())), 2)) for z in common)
            overlap = len(two_hop & theirs)
            row = self._entity_row(entity)
            rows.append([
                float(np.log1p(len(common))), adamic_adar, len(common) / max(len(known), 1),
                len(common) / max(len(theirs), 1), float(np.log1p(len(theirs))), float(np.log1p(overlap)),
                overlap / max(len(theirs), 1),
                float(embeddings[row] @ query_vector) if row is not None else 0.0, float(row is not None),
            ])
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(LINK_FEATURES))

    def candidate_parts(self, query: str, positions: Sequence[int], *, source_ids: set[str],
                        known: set[str]) -> CandidateParts:
        """Everything about the candidates at corpus ``positions`` except the stage-1 predictions."""
        dense = self.retriever.dense.scores(query)
        bm25 = self.retriever.bm25.scores(query)
        rows, new_entities = [], []
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
            new_entities.append(sorted(others - known))
        entities = sorted({e for named in new_entities for e in named})
        source_id = next(iter(source_ids)) if len(source_ids) == 1 else None
        link = self.link_features(source_id, known, entities, self.retriever.dense.embed_query(query))
        base = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(BASE_FEATURES))
        return CandidateParts(base=base, new_entities=new_entities, entities=entities, link=link)

    def features(self, entity_name: str, positions: Sequence[int], *, entity_id: str | None = None,
                 known_neighbours: Iterable[str] = (), query: str | None = None) -> np.ndarray:
        """Feature matrix [len(positions), len(FEATURES)] for documents at corpus ``positions``.

        ``query`` is the text the candidates were retrieved with (default: ``entity_name``).
        """
        # Without an id, S is whichever known entity its name matches (none for a new entity).
        source_ids = {entity_id} if entity_id else self.mentions.find(entity_name)
        parts = self.candidate_parts(query or entity_name, positions, source_ids=source_ids,
                                     known=set(known_neighbours))
        return parts.assemble(self.prior)

    def run(self, entity_name: str, hits: Sequence[Hit], *, entity_id: str | None = None,
            known_neighbours: Iterable[str] = (), query: str | None = None) -> RerankResult:
        """``hits`` (from this retriever) ordered by predicted utility for the entity, best first.

        Args:
            entity_name: S's name.
            hits: the retrieved candidates, in similarity order.
            entity_id: S's id in the graph (None for a new entity).
            known_neighbours: ids of S's neighbours in the graph now.
            query: the text ``hits`` were retrieved with (:func:`knowledge_query`); default the name.
        """
        positions = [self.retriever.corpus.index_of(hit.doc_id) for hit in hits]
        if not positions:
            return RerankResult(entity=entity_name)
        matrix = self.features(entity_name, positions, entity_id=entity_id, known_neighbours=known_neighbours,
                               query=query)
        utility = self.weights.predict(matrix)
        order = sorted(range(len(hits)), key=lambda i: (-utility[i], i))
        return RerankResult(entity=entity_name, hits=[
            RerankedHit(doc_id=hits[i].doc_id, utility=float(utility[i]), similarity_rank=i + 1,
                        features=dict(zip(FEATURES, map(float, matrix[i]), strict=True)), hit=hits[i])
            for i in order])

    # --- persistence (a model folder: config.json + model.safetensors + graph.json) --------------
    def save(self, directory: Path | str) -> Path:
        directory = Path(directory)
        state = self.weights.tensors() | self.prior.tensors("prior_")
        save_folder(directory, kind=UTILITY_KIND, state=state,
                    config={"features": list(FEATURES), "link_features": list(LINK_FEATURES),
                            "cue_words": sorted(self.cue_words)})
        (directory / GRAPH_FILE).write_text(json.dumps({k: sorted(v) for k, v in sorted(self.graph.items())}))
        return directory

    @classmethod
    def load(cls, directory: Path | str, *, retriever: HybridRetriever,
             mentions: EntityMentions) -> UtilityReranker:
        directory = Path(directory)
        config, state = load_folder(directory, kind=UTILITY_KIND,
                                    train_hint="train_utility_reranker(dataset=..., retriever=...)")
        if config.get("features") != list(FEATURES) or config.get("link_features") != list(LINK_FEATURES):
            raise KGForgeError(f"{directory} was trained on features {config.get('features')}, this version "
                               f"computes {list(FEATURES)}; retrain it (kgforge train utility --dataset ...)")
        graph_file = directory / GRAPH_FILE
        graph = json.loads(graph_file.read_text()) if graph_file.exists() else {}
        return cls(retriever, mentions, UtilityWeights.from_tensors(state), config["cue_words"],
                   prior=UtilityWeights.from_tensors(state, "prior_"), graph=graph)


# --- training and evaluation -----------------------------------------------------------------
def neighbours_of(dataset: Dataset, splits: Sequence[str] | None = None) -> dict[str, set[str]]:
    """Undirected neighbour sets over the triples of ``splits`` (default: all), self-loops dropped."""
    graph: dict[str, set[str]] = defaultdict(set)
    for triple in _triples(dataset, splits):
        if triple.head != triple.tail:
            graph[triple.head].add(triple.tail)
            graph[triple.tail].add(triple.head)
    return graph


def _triples(dataset: Dataset, splits: Sequence[str] | None):
    if splits is None:
        return dataset.all_triples()
    missing = [s for s in splits if s not in dataset.triples]
    if missing:
        raise InvalidInputError("graph_splits", f"{dataset.name} has no split {missing[0]!r} "
                                                f"(it has {', '.join(dataset.triples)})")
    return [t for s in splits for t in dataset.triples[s]]


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
    """One source entity's candidate list (parts, labels, the similarity order)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    entity_id: str
    parts: Any
    link_labels: Any
    labels: list[int]
    fused_rank: list[int]
    features: Any = None


class UtilityTrainingResult(BaseModel):
    """What :func:`train_utility_reranker` produced: the reranker, its metrics and how it was made."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    reranker: Any = Field(exclude=True)
    seed: int
    config: dict[str, Any]
    metrics: dict[str, dict[str, float]]
    counts: dict[str, int]
    coefficients: dict[str, float]
    prior_coefficients: dict[str, float]
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
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, check=False,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


class _TrainingGraph:
    """The graph of the training splits: neighbour sets and each entity's facts as text."""

    def __init__(self, dataset: Dataset, splits: Sequence[str]):
        self.names = {entity.id: entity.name for entity in dataset.entities}
        self.texts = {entity.id: name_and_description(entity.name, entity.description, QUERY_DESCRIPTION_CHARS)
                      for entity in dataset.entities}
        self.neighbours = neighbours_of(dataset, splits)
        self.edges: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for t in _triples(dataset, splits):
            if t.head != t.tail:
                self.edges[t.head].append((t.head, t.relation, t.tail))
                self.edges[t.tail].append((t.head, t.relation, t.tail))

    def query(self, entity_id: str, known: set[str]) -> str:
        """:func:`knowledge_query` of S with only its known (not held-out) edges as facts."""
        facts = [fact_text(self.names.get(h, h), r, self.names.get(t, t)) for h, r, t in self.edges[entity_id]
                 if (t if h == entity_id else h) in known]
        return knowledge_query(self.texts[entity_id], facts)


def build_queries(reranker: UtilityReranker, graph: _TrainingGraph, entity_ids: Sequence[str], *,
                  holdout_fraction: float, candidates: int, rng: random.Random, knowledge_queries: bool = True,
                  deadline: float | None = None) -> list[UtilityQuery]:
    """For each source entity: hold out neighbours, retrieve ``candidates`` documents with its
    knowledge query (or its name), label each one useful when it names a held-out neighbour.
    Stops early (keeping what it has) once ``time.perf_counter()`` passes ``deadline``."""
    corpus = reranker.retriever.corpus
    plans = []
    for entity_id in entity_ids:  # the held-out draws first, so the rng sequence is the same with any budget
        neighbours = sorted(graph.neighbours[entity_id])
        held = set(rng.sample(neighbours, max(1, round(holdout_fraction * len(neighbours)))))
        known = set(neighbours) - held
        plans.append((entity_id, held, known,
                      graph.query(entity_id, known) if knowledge_queries else graph.names[entity_id]))
    queries: list[UtilityQuery] = []
    for start in range(0, len(plans), QUERY_BATCH):
        if deadline is not None and time.perf_counter() > deadline:
            break
        batch = plans[start:start + QUERY_BATCH]
        reranker.retriever.dense.embed_queries([query for *_, query in batch])
        for entity_id, held, known, query in batch:
            if deadline is not None and time.perf_counter() > deadline:
                break
            hits = reranker.retriever.run(query, k=candidates).hits
            positions = [corpus.index_of(hit.doc_id) for hit in hits]
            parts = reranker.candidate_parts(query, positions, source_ids={entity_id}, known=known)
            labels = [int(bool(reranker.mentioned(p) & held)) for p in positions]
            queries.append(UtilityQuery(
                entity_id=entity_id, parts=parts, labels=labels, fused_rank=list(range(len(positions))),
                link_labels=np.asarray([int(e in held) for e in parts.entities], dtype=np.int64)))
    return queries


def _fit_prior(queries: Sequence[UtilityQuery], c: float) -> UtilityWeights:
    usable = [q for q in queries if q.parts.entities]
    if not usable:
        raise KGForgeError("no candidate document names an entity; the mention matcher finds nothing in this "
                           "corpus, so there is nothing to learn (check the dataset's entity names)")
    labels = np.concatenate([q.link_labels for q in usable])
    if labels.min() == labels.max():
        # A fold of a tiny graph may hold no missing neighbour at all: an uninformative prior (0.5
        # for every entity) keeps the aggregates monotone in the count of new entities.
        return UtilityWeights.zeros(len(LINK_FEATURES))
    return UtilityWeights.fit(np.concatenate([q.parts.link for q in usable]), labels, c=c)


def evaluate_rankings(queries: Sequence[UtilityQuery], weights: UtilityWeights, *,
                      k: int) -> dict[str, dict[str, float]]:
    """P@k and nDCG@k of useful documents for the utility ranking and the similarity-only ones
    (hybrid fused order, dense cosine, BM25) and a mention-count heuristic (how many known entities a
    document names), averaged over entities (nDCG over those with at least one useful candidate).
    Each query's ``features`` must be assembled (full :data:`FEATURES` matrix)."""
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


def _interleave(test_ids: Sequence[str], train_ids: Sequence[str]) -> list[str]:
    """Test and train entities mixed in proportion, so a time budget cuts both sets alike."""
    total = len(test_ids) + len(train_ids)
    keyed = [((i + 0.5) / len(test_ids), 0, e) for i, e in enumerate(test_ids)]
    keyed += [((i + 0.5) / len(train_ids), 1, e) for i, e in enumerate(train_ids)]
    return [e for _, _, e in sorted(keyed)] if total else []


def train_utility_reranker(*, dataset: Dataset, retriever: HybridRetriever, holdout_fraction: float = 0.3,
                           test_fraction: float = 0.3, candidates: int = 20, k: int = 5, c: float = 1.0,
                           seed: int = 0, max_entities: int | None = None,
                           mentions: EntityMentions | None = None, graph_splits: Sequence[str] = ("train",),
                           knowledge_queries: bool = True,
                           max_seconds: float | None = None) -> UtilityTrainingResult:
    """Train and evaluate a :class:`UtilityReranker` on a KG with entity descriptions.

    Source entities (those with at least two neighbours in the ``graph_splits`` graph) are split
    into train and test entities; each gets ``holdout_fraction`` of its neighbours held out;
    candidates are the retriever's top ``candidates`` for its :func:`knowledge_query` (known facts
    only). Stage 1 is cross-fitted on two folds of the train entities, stage 2 is fitted on its
    out-of-fold priors, stage 1 is then refitted on all train entities. Metrics on the *test
    entities* compare the utility ranking with similarity-only rankings and mention counting.

    Args:
        dataset: a loaded KG (UMLS long descriptions or WN18RR glosses) whose corpus ``retriever`` indexes.
        retriever: a :class:`HybridRetriever` over ``corpus_from_dataset(dataset)`` (or a superset).
        max_entities: sample at most this many source entities (WN18RR has 40k).
        mentions: the name matcher (default: every entity name of ``dataset``); pass a filtered one
            where names are common words (WN18RR lemmas such as ``"take"``).
        graph_splits: the triples that make the graph (labels, stage-1 features, the saved graph).
            Default ``train`` only, so a generation evaluation on dev or test never sees its truth.
        knowledge_queries: retrieve with :func:`knowledge_query` (default) or with the name alone.
        max_seconds: stop collecting examples after this long (test and train entities are cut
            alike; at least 2 train and 1 test entities are needed).

    Returns:
        The reranker, train/test metrics, counts, coefficients, seed, config, seconds, version, git hash.

    Raises:
        InvalidInputError: bad fractions or splits, or too few entities.
    """
    started = time.perf_counter()
    if not 0 < holdout_fraction < 1 or not 0 < test_fraction < 1:
        raise InvalidInputError("holdout_fraction", "holdout_fraction and test_fraction must be in (0, 1)")
    if max_seconds is not None and max_seconds <= 0:
        raise InvalidInputError("max_seconds", f"must be positive, got {max_seconds}")
    rng = random.Random(seed)
    graph = _TrainingGraph(dataset, graph_splits)
    sources = [e.id for e in dataset.entities if len(graph.neighbours.get(e.id, ())) >= 2]
    rng.shuffle(sources)
    if max_entities is not None:
        sources = sources[:max_entities]
    n_test = max(1, round(test_fraction * len(sources)))
    test_ids, train_ids = sources[:n_test], sources[n_test:]
    if len(train_ids) < 2:
        raise InvalidInputError("dataset", f"only {len(sources)} entities with two or more neighbours; "
                                "need more to train (lower test_fraction or use a larger graph)")

    mentions = mentions or EntityMentions.from_dataset(dataset)
    reranker = UtilityReranker(retriever, mentions, UtilityWeights.zeros(len(FEATURES)),
                               relation_cue_words(r.text for r in dataset.relations),
                               graph=graph.neighbours)
    deadline = started + max_seconds if max_seconds is not None else None
    built = build_queries(reranker, graph, _interleave(test_ids, train_ids), holdout_fraction=holdout_fraction,
                          candidates=candidates, rng=rng, knowledge_queries=knowledge_queries, deadline=deadline)
    test_set = set(test_ids)
    test = [q for q in built if q.entity_id in test_set]
    train = [q for q in built if q.entity_id not in test_set]
    if len(train) < 2 or not test:
        raise InvalidInputError("max_seconds", f"only {len(train)} train and {len(test)} test entities were "
                                f"collected in {max_seconds}s; allow more time (2 train and 1 test at least)")

    # Stage 1 cross-fitted: each half's document features use priors fitted on the other half.
    half = len(train) // 2
    for fold, other in ((train[:half], train[half:]), (train[half:], train[:half])):
        prior = _fit_prior(other, c)
        for query in fold:
            query.features = query.parts.assemble(prior)
    features = np.concatenate([q.features for q in train])
    labels = np.concatenate([q.labels for q in train])
    reranker.weights = UtilityWeights.fit(features, labels, c=c)
    reranker.prior = _fit_prior(train, c)
    for query in test:
        query.features = query.parts.assemble(reranker.prior)

    metrics = {f"train/{name}": values
               for name, values in evaluate_rankings(train, reranker.weights, k=k).items()}
    metrics |= {f"test/{name}": values
                for name, values in evaluate_rankings(test, reranker.weights, k=k).items()}
    test_labels = [label for q in test for label in q.labels]
    return UtilityTrainingResult(
        reranker=reranker, seed=seed,
        config={"dataset": dataset.name, "holdout_fraction": holdout_fraction, "test_fraction": test_fraction,
                "candidates": candidates, "k": k, "c": c, "max_entities": max_entities,
                "graph_splits": list(graph_splits), "knowledge_queries": knowledge_queries,
                "max_seconds": max_seconds},
        metrics=metrics,
        counts={"train_entities": len(train), "test_entities": len(test), "train_examples": int(labels.size),
                "train_useful": int(labels.sum()), "test_examples": len(test_labels),
                "test_useful": int(sum(test_labels)), "planned_entities": len(sources),
                "graph_entities": len(graph.neighbours)},
        coefficients=dict(zip(FEATURES, reranker.weights.coef, strict=True)),
        prior_coefficients=dict(zip(LINK_FEATURES, reranker.prior.coef, strict=True)),
        seconds=time.perf_counter() - started, git_hash=_git_hash())


__all__ = ["FEATURES", "LINK_FEATURES", "EntityMentions", "RerankResult", "RerankedHit", "UtilityReranker",
           "UtilityTrainingResult", "UtilityWeights", "evaluate_rankings", "fact_text", "knowledge_query",
           "ndcg_at", "neighbours_of", "precision_at", "relation_cue_words", "train_utility_reranker"]
