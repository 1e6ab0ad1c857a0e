"""Relation retrieval and relation filtering (DESIGN 4.2).

**Retrieval** scores every relation of the pool for S:

    retrieval = cosine(MiniLM(S's knowledge text), MiniLM(relation description)) + prior_weight * prior

where ``prior`` is the share of "entities like S" (the inherited knowledge: same type, or nearest by
text, from the domain's entity index) that have the relation as head, with S itself counted twice
when it is already in the graph; their relation profiles are read in one batch
(:meth:`GraphSnapshot.relation_frequency`). The pool is the domain's; its texts are embedded once
per encoder and pool, not per job. The best ``top_k`` become candidates.

**Filtering** keeps the candidates that truly apply to S:

* LLM mode: the ``relation_filter`` prompt, structured answer validated against
  :class:`~kg_builder.llm.schemas.RelationChoice`; relations outside the offered candidates are
  rejected and logged (:func:`~kg_builder.llm.schemas.check_relations_in_pool`). If the LLM fails
  (after its own retries) the step degrades to the offline filter and records why.
* Offline: the relations S already has as head in the graph come first (``keep_own``, the
  default: a relation S heads applies to S by definition), then the trained multi-label
  classifier P(r | S) (:class:`~kg_builder.models.relation_classifier.RelationClassifier`) keeps
  candidates with probability >= ``threshold``; at least ``min_keep`` and at most ``max_keep``.
  The classifier reads S's text only, and it can miss S's own relations: for UMLS `virus` it gave
  `affects` 0.60 (no organism heads `affects` in UMLS) and `interacts_with` below 0.38, a relation
  virus heads 11 times in train and 2 of its 5 test triples use. Keeping S's own relations raised
  candidate recall from 0.79 to 0.88 on UMLS dev and precision at every matched recall
  (``benchmarks/bench_own_relations.py``; README, "Generation"). The relations the classifier adds
  after S's own ones hold little truth on UMLS; the confidence model's ``log_own`` feature (S's edge
  count of the relation) lets the calibration weigh the two kinds per domain.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from kg_builder.llm.base import LLM, LLMError, OnError
from kg_builder.llm.prompts import format_relations, get_prompt
from kg_builder.llm.schemas import RelationChoice, check_relations_in_pool
from kg_builder.models.encoder import TextEncoder
from kg_builder.models.relation_classifier import RelationClassifier, entity_text

from .knowledge import Knowledge
from .snapshot import GraphSnapshot

log = logging.getLogger(__name__)


class RelationCandidate(BaseModel):
    relation: str
    description: str
    similarity: float
    prior: float
    retrieval_score: float
    probability: float | None = None
    reason: str | None = None


class RelationSelection(BaseModel):
    candidates: list[RelationCandidate]
    kept: list[RelationCandidate]
    filtered_by: Literal["llm", "classifier", "retrieval"]
    rejected: list[str] = Field(default_factory=list)
    note: str | None = None


# Relation texts embedded once per encoder and pool, not once per job: a worker builds a selector
# for every job, and FB15k-237's pool alone is 237 texts.
_POOL_VECTORS: weakref.WeakKeyDictionary[TextEncoder, dict[tuple[str, ...], np.ndarray]] = weakref.WeakKeyDictionary()
_POOL_LOCK = threading.Lock()


def _relation_vectors(encoder: TextEncoder, texts: tuple[str, ...]) -> np.ndarray:
    if not texts:
        return np.zeros((0, encoder.dim), np.float32)
    with _POOL_LOCK:
        cached = _POOL_VECTORS.setdefault(encoder, {})
        if texts not in cached:
            if len(cached) >= 16:
                cached.pop(next(iter(cached)))
            cached[texts] = encoder.encode(list(texts))
        return cached[texts]


class RelationSelector:
    """Retrieval + filtering over the snapshot's relation pool.

    Args:
        snapshot: the graph (relation pool, relation profiles).
        encoder: MiniLM for the bi-encoder.
        classifier: the offline filter; None keeps the retrieval order (``max_keep`` best).
        llm: the LLM filter, when configured and enabled.
        restrict: only these relations (a job's relation-pool restriction); None = whole pool.
    """

    def __init__(self, snapshot: GraphSnapshot, encoder: TextEncoder, *, classifier: RelationClassifier | None = None,
                 llm: LLM | None = None, restrict: list[str] | None = None, top_k: int = 15,
                 prior_weight: float = 1.0, threshold: float = 0.5, min_keep: int = 1, max_keep: int = 8,
                 keep_own: bool = True):
        self.snapshot = snapshot
        self.encoder = encoder
        self.classifier = classifier
        self.llm = llm
        pool = snapshot.relations
        if restrict is not None:
            pool = {name: pool[name] for name in restrict if name in pool}
        self.pool = pool
        self.names = list(pool)
        self.top_k, self.prior_weight, self.threshold = top_k, prior_weight, threshold
        self.min_keep, self.max_keep, self.keep_own = min_keep, max_keep, keep_own
        self._relation_vectors = _relation_vectors(encoder, tuple(f"{n.replace('_', ' ')}: {pool[n]}"
                                                                   for n in self.names))

    def retrieve(self, knowledge: Knowledge) -> list[RelationCandidate]:
        if not self.names:
            return []
        similarity = self._relation_vectors @ self.encoder.encode([knowledge.query_text()])[0]
        peers = list(knowledge.similar_entities)
        counts = self.snapshot.relation_frequency(peers)
        own = self.snapshot.relation_profile(knowledge.entity.id) if knowledge.in_graph else set()
        denominator = max(len(peers) + 2 * bool(knowledge.in_graph), 1)
        candidates = []
        for i, name in enumerate(self.names):
            prior = (counts.get(name, 0) + 2 * (name in own)) / denominator
            candidates.append(RelationCandidate(
                relation=name, description=self.pool[name], similarity=float(similarity[i]), prior=prior,
                retrieval_score=float(similarity[i]) + self.prior_weight * prior))
        candidates.sort(key=lambda c: -c.retrieval_score)
        return candidates[: self.top_k]

    def select(self, knowledge: Knowledge, *, use_llm: bool = True) -> RelationSelection:
        candidates = self.retrieve(knowledge)
        if self.classifier is not None:
            probs = self.classifier.predict([entity_text(knowledge.entity.name, knowledge.entity.description)],
                                            self.encoder)[0]
            index = {r: i for i, r in enumerate(self.classifier.relation_ids)}
            for c in candidates:
                c.probability = float(probs[index[c.relation]]) if c.relation in index else 0.0
        note = None
        if use_llm and self.llm is not None and candidates:
            try:
                return self._llm_filter(knowledge, candidates)
            except LLMError as e:
                note = f"LLM relation filter failed ({e}); used the offline classifier"
                log.warning("%s for %r", note, knowledge.entity.name)
        if self.classifier is None:
            return RelationSelection(candidates=candidates, kept=candidates[: self.max_keep],
                                     filtered_by="retrieval", note=note)
        own = (self.snapshot.relation_profile(knowledge.entity.id) if self.keep_own and knowledge.in_graph
               else set())
        ranked = sorted(candidates, key=lambda c: (c.relation not in own, -(c.probability or 0.0)))
        kept = [c for c in ranked if c.relation in own or (c.probability or 0.0) >= self.threshold][: self.max_keep]
        if len(kept) < self.min_keep:
            kept = ranked[: self.min_keep]
        return RelationSelection(candidates=candidates, kept=kept, filtered_by="classifier", note=note)

    def _llm_filter(self, knowledge: Knowledge, candidates: list[RelationCandidate]) -> RelationSelection:
        assert self.llm is not None
        background = "\n".join(filter(None, [knowledge.entity.text(), knowledge.descriptive,
                                             knowledge.prompt_parts()["structural"]]))
        messages = get_prompt("relation_filter").render(
            entity=knowledge.entity.name, entity_type=knowledge.entity.type or "(unknown)", background=background,
            candidates=format_relations({c.relation: c.description for c in candidates}))
        answer = self.llm.invoke(messages, schema=RelationChoice, on_error=OnError.RAISE).parsed
        assert isinstance(answer, RelationChoice)
        check = check_relations_in_pool(answer, [c.relation for c in candidates], entity=knowledge.entity.name)
        by_name = {c.relation: c for c in candidates}
        kept = [by_name[choice.relation].model_copy(update={"reason": choice.reason}) for choice in check.accepted]
        return RelationSelection(candidates=candidates, kept=kept[: self.max_keep], filtered_by="llm",
                                 rejected=[c.relation for c in check.rejected])


__all__ = ["RelationCandidate", "RelationSelection", "RelationSelector"]
