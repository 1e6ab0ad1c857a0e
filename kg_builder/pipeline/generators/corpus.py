"""``corpus``: targets read from S's retrieved documents (the utility-ranked ones), in two kinds.

* **Known entities** (the mention path): entities the documents name that the relation already
  points at elsewhere in the graph (its range); score = document utility x the entity's share of
  the relation's range. Ranked first, 1..m, exactly as before new entities existed.
* **New entities** (issue 9, point 5): noun phrases and attribute spans of the same documents
  (:mod:`kg_builder.pipeline.phrases`) that name no entity of the graph, proposed with
  ``target_id=None`` so that the write path resolves them (``EntityResolver``) and creates a node
  for what stays unresolved. At most ``new_per_relation`` per relation, ranked **after** the
  mention path's budget (k+1, k+2, ... for ``propose(..., k)``, whether or not the mention path
  filled it): the ``rr_corpus`` feature of known targets is the same as without them, a phrase
  never outranks an entity the graph already knows, and ``rr_corpus`` <= 1/(k+1) tells a new
  entity from a mentioned one even when no entity was mentioned.

New-entity score = best document utility x salience x range fit, where

* *salience* = sublinear frequency across S's documents (``1 + ln tf``, capped at ``1 + ln 5``)
  x the phrase's mean BM25-corpus IDF share (``ln(N / df) / ln N``: a phrase of words found in
  most documents scores ~0) x 1.25 for a span found by a naming pattern (list after "such as",
  parentheses, "X of Y", ``Key: value``);
* *range fit* = the largest cosine (MiniLM) between the phrase and the *names* of the relation's
  known tails (names, not ``name: description``: a short phrase is compared with short texts).
  Phrases below ``min_fit`` are dropped, and so are phrases at ``resolve_similarity`` or more to
  a range entity's name: those name that entity ("bacteria" vs "bacterium"), not a new one.

Filtered out before scoring: S's own name and aliases, any phrase whose normalised tokens equal
an entity's name or alias in the snapshot (those are the mention path's), phrases headed by a
generic noun ("type", "part", "example": :data:`~kg_builder.pipeline.phrases.GENERIC_HEADS`), and
phrases whose every word appears in more than ``max_df_share`` of the corpus documents.

Type of a new entity: taken from the relation's range. When some of the range's tails have a
``type``, the most common one (weighted by edge counts) if it covers at least half of the typed
weight, otherwise the type of the typed range entity whose name is nearest the phrase. When no
tail of the range has a type (UMLS, WN18RR imported from their files), the type is None: a
neighbour's *name* is not used as a type, since the resolver keeps same-named nodes with
different types apart and an invented type would split one new entity into several nodes.

Cost: phrases are extracted once per document and embedded once per S (at most
``max_phrases``, one encoder batch); range names are embedded once per relation and generator;
per relation what remains is one matrix product (measured in the README paragraph on offline new
entities). Evidence = the id of the document with the highest utility that contains the phrase.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kg_builder.graphdb import schema
from kg_builder.models.encoder import TextEncoder
from kg_builder.retrieval.bm25 import BM25Index
from kg_builder.retrieval.utility import EntityMentions, normalise_tokens

from ..knowledge import Knowledge
from ..phrases import GENERIC_HEADS, Phrase, extract_phrases
from ..relations import RelationCandidate
from .base import GeneratorContext, Proposal, register

#: token -> share of corpus documents that contain it (0 for unseen tokens).
DocumentFrequency = Callable[[str], list[float]]

_PATTERN_BOOST = {"list": 1.25, "paren": 1.25, "of": 1.25, "attribute": 1.25}
_MAX_TF = 1.0 + math.log(5)


@dataclass
class NewPhrase:
    """One distinct phrase of S's documents, aggregated over its occurrences."""

    key: tuple[str, ...]
    name: str
    tf: int
    utility: float
    doc_id: str
    salience: float
    patterns: frozenset[str]


def bm25_document_frequency(bm25: BM25Index) -> DocumentFrequency | None:
    """Document-frequency shares from a built :class:`BM25Index` (its own tokenisation; O(1) per
    token, read from bm25s's token-major score matrix), or None when the index is empty or its
    layout is not the one expected (the IDF factor is then left out, not guessed)."""
    retriever = getattr(bm25, "_retriever", None)
    vocab = getattr(retriever, "vocab_dict", None)
    scores = getattr(retriever, "scores", None)
    if not vocab or not isinstance(scores, dict) or "indptr" not in scores or not bm25.size:
        return None
    indptr, total = scores["indptr"], float(bm25.size)

    def shares(text: str) -> list[float]:
        out = []
        for token in bm25.tokenize(text):
            column = vocab.get(token)
            out.append(0.0 if column is None else float(indptr[column + 1] - indptr[column]) / total)
        return out

    return shares


@register("corpus")
@dataclass
class CorpusGenerator(GeneratorContext):
    """Known entities named in S's documents (mention path), then new ones (module docstring).

    Args:
        mentions: the name matcher of the utility model (None: no mention path).
        corpus_size: documents in the corpus ``document_frequency`` counts over.
        encoder: MiniLM for the range fit (None: no new entities).
        document_frequency: corpus document-frequency shares (:func:`bm25_document_frequency`).
        new_per_relation: new-entity proposals per relation (0 turns them off).
        min_fit / resolve_similarity: the range-fit band a new phrase must fall in.
        max_phrases: phrases of one S embedded (the most salient ones).
        max_df_share: a phrase all of whose words are in more documents than this is generic.
    """

    mentions: EntityMentions | None = None
    encoder: TextEncoder | None = None
    document_frequency: DocumentFrequency | None = None
    name: str = "corpus"
    model: str = "mentions"
    new_per_relation: int = 2
    min_fit: float = 0.45
    resolve_similarity: float = 0.9
    max_phrases: int = 40
    max_df_share: float = 0.25
    corpus_size: int = 0
    _doc_phrases: dict[tuple[str, int], list[Phrase]] = field(default_factory=dict, repr=False)
    _by_source: dict[tuple[str, tuple[str, ...]], tuple[list[NewPhrase], np.ndarray]] = field(
        default_factory=dict, repr=False)
    _ranges: dict[str, tuple[int, list[str], np.ndarray]] = field(default_factory=dict, repr=False)
    _name_keys: set[tuple[str, ...]] = field(default_factory=set, repr=False)
    _name_keys_size: int = field(default=-1, repr=False)

    def propose(self, knowledge: Knowledge, relation: RelationCandidate, k: int) -> list[Proposal]:
        if not knowledge.documents:
            return []
        known_targets = self._mentioned(knowledge, relation, k)
        new = self._new_entities(knowledge, relation.relation, first_rank=k + 1)
        return known_targets + new

    # --- known entities (the mention path) -----------------------------------------------------
    def _mentioned(self, knowledge: Knowledge, relation: RelationCandidate, k: int) -> list[Proposal]:
        if self.mentions is None:
            return []
        source, known = self.allowed(knowledge, relation.relation)
        span = self.snapshot.relation_range(relation.relation)
        total = sum(span.values()) or 1
        best: dict[str, tuple[float, str]] = {}
        for hit in knowledge.documents:
            utility = knowledge.document_utility.get(hit.doc_id, 0.0)
            for native in self.mentions.find(hit.text):
                target = schema.graph_key(self.snapshot.domain, native)
                if target == source or target in known or target not in span:
                    continue
                score = utility * span[target] / total
                if score > best.get(target, (-1.0, ""))[0]:
                    best[target] = (score, hit.doc_id)
        ranked = sorted(best.items(), key=lambda item: -item[1][0])[:k]
        return [Proposal(relation=relation.relation, target_id=target, target_name=self.snapshot.entities[target].name,
                         generator=self.name, model=self.model, score=score, rank=i + 1, evidence=[doc])
                for i, (target, (score, doc)) in enumerate(ranked)]

    # --- new entities ----------------------------------------------------------------------------
    def _entity_name_keys(self) -> set[tuple[str, ...]]:
        """Normalised token keys of every entity name and alias (rebuilt when entities are added)."""
        if self._name_keys_size != len(self.snapshot.entities):
            self._name_keys = {key for entity in self.snapshot.entities.values()
                               for alias in EntityMentions.aliases_of(entity.name)
                               if (key := tuple(normalise_tokens(alias)))}
            self._name_keys_size = len(self.snapshot.entities)
        return self._name_keys

    def _phrases_of(self, doc_id: str, text: str) -> list[Phrase]:
        key = (doc_id, hash(text))  # a re-posted document keeps its id and changes its text
        if key not in self._doc_phrases:
            if len(self._doc_phrases) > 10_000:  # bounded: a long-lived worker sees many documents
                self._doc_phrases.clear()
            self._doc_phrases[key] = extract_phrases(text)
        return self._doc_phrases[key]

    def _generic(self, phrase_key: tuple[str, ...], name: str) -> bool:
        if phrase_key[-1] in GENERIC_HEADS or (len(phrase_key) == 1 and len(phrase_key[0]) < 3):
            return True
        if self.document_frequency is None:
            return False
        shares = self.document_frequency(name)
        return bool(shares) and min(shares) > self.max_df_share

    def _idf_share(self, name: str) -> float:
        if self.document_frequency is None:
            return 1.0
        shares = self.document_frequency(name)
        size = max(self.corpus_size, 2)
        if not shares:
            return 0.0
        # ln(1/share) / ln(N) in [0, 1]; unseen words count as seen once
        floor = 1.0 / size
        return float(np.mean([math.log(1.0 / max(s, floor)) / math.log(size) for s in shares]))

    def source_phrases(self, knowledge: Knowledge) -> tuple[list[NewPhrase], np.ndarray]:
        """The distinct new-entity candidates of S's documents, most salient first, with their
        unit-norm embeddings (cached per S and document set)."""
        cache_key = (knowledge.entity.id, tuple(h.doc_id for h in knowledge.documents))
        if cache_key in self._by_source:
            return self._by_source[cache_key]
        if len(self._by_source) > 256:
            self._by_source.clear()
        names = self._entity_name_keys()
        source_keys = {tuple(normalise_tokens(alias)) for alias in EntityMentions.aliases_of(knowledge.entity.name)}
        occurrences: dict[tuple[str, ...], list[tuple[Phrase, float, str]]] = {}
        for hit in knowledge.documents:
            utility = knowledge.document_utility.get(hit.doc_id, 0.0)
            for phrase in self._phrases_of(hit.doc_id, hit.text):
                if phrase.key in source_keys or phrase.key in names:
                    continue
                occurrences.setdefault(phrase.key, []).append((phrase, utility, hit.doc_id))
        found: list[NewPhrase] = []
        for key, seen in occurrences.items():
            surfaces = Counter(p.text if not p.sentence_start else p.text[:1].lower() + p.text[1:]
                               for p, _, _ in seen)
            name = surfaces.most_common(1)[0][0]
            if self._generic(key, name):
                continue
            phrase, utility, doc_id = max(seen, key=lambda item: item[1])
            patterns = frozenset(p.pattern for p, _, _ in seen)
            boost = max((_PATTERN_BOOST.get(p, 1.0) for p in patterns), default=1.0)
            tf = len(seen)
            salience = min(1.0 + math.log(tf), _MAX_TF) / _MAX_TF * self._idf_share(name) * boost
            found.append(NewPhrase(key, name, tf, utility, doc_id, salience, patterns))
        found.sort(key=lambda p: (-(p.utility * p.salience), p.name))
        found = found[: self.max_phrases]
        vectors = (self.encoder.encode([p.name for p in found]) if found and self.encoder is not None
                   else np.zeros((0, 1), np.float32))
        self._by_source[cache_key] = (found, vectors)
        return found, vectors

    def _range(self, relation: str) -> tuple[list[str], np.ndarray]:
        span = self.snapshot.relation_range(relation)
        cached = self._ranges.get(relation)
        if cached is None or cached[0] != len(span):
            ids = sorted(span)
            vectors = self.encoder.encode([self.snapshot.entities[i].name if i in self.snapshot.entities else i
                                           for i in ids]) if ids and self.encoder is not None else np.zeros((0, 1))
            cached = (len(span), ids, vectors)
            self._ranges[relation] = cached
        return cached[1], cached[2]

    def range_type(self, relation: str, similarities: np.ndarray | None = None,
                   range_ids: list[str] | None = None) -> str | None:
        """The type a new target of ``relation`` gets (module docstring): the range's most common
        type, or the nearest typed range entity's when no type covers half the typed tails; None
        when no tail is typed."""
        span = self.snapshot.relation_range(relation)
        typed = Counter()
        for tail, count in span.items():
            info = self.snapshot.entities.get(tail)
            if info is not None and info.type:
                typed[info.type] += count
        if not typed:
            return None
        best, weight = typed.most_common(1)[0]
        if weight * 2 >= sum(typed.values()) or similarities is None or range_ids is None:
            return best
        order = np.argsort(-similarities)
        for i in order:
            info = self.snapshot.entities.get(range_ids[int(i)])
            if info is not None and info.type:
                return info.type
        return best

    def _new_entities(self, knowledge: Knowledge, relation: str, *, first_rank: int) -> list[Proposal]:
        if self.new_per_relation < 1 or self.encoder is None:
            return []
        range_ids, range_vectors = self._range(relation)
        if not range_ids:
            return []  # nothing tells what the relation points at
        phrases, vectors = self.source_phrases(knowledge)
        if not phrases:
            return []
        # einsum, not `@`: on a busy machine BLAS threads made this 40 x 100 product cost ~17 ms
        similarity = np.einsum("pd,rd->pr", vectors, range_vectors)  # [phrases, range]
        fit = similarity.max(axis=1)
        scored = [(p.utility * p.salience * float(f), i) for i, (p, f) in enumerate(zip(phrases, fit, strict=True))
                  if self.min_fit <= f < self.resolve_similarity]
        scored.sort(key=lambda item: (-item[0], phrases[item[1]].name))
        out = []
        for rank, (score, i) in enumerate(scored[: self.new_per_relation], start=first_rank):
            phrase = phrases[i]
            out.append(Proposal(relation=relation, target_name=phrase.name, target_id=None,
                                target_type=self.range_type(relation, similarity[i], range_ids),
                                generator=self.name, model=self.model, score=score, rank=rank,
                                evidence=[phrase.doc_id]))
        return out

    @classmethod
    def build(cls, *, snapshot, models, options, llm=None) -> CorpusGenerator:
        utility = models.utility
        mentions = utility.mentions if utility is not None else None
        frequency = bm25_document_frequency(utility.retriever.bm25) if utility is not None else None
        return cls(snapshot=snapshot, skip_known=options.skip_known, mentions=mentions,
                   encoder=models.encoder if utility is not None else None, document_frequency=frequency,
                   corpus_size=utility.retriever.bm25.size if utility is not None else 0,
                   model=f"utility-{snapshot.domain}")


__all__ = ["CorpusGenerator", "NewPhrase", "bm25_document_frequency"]
