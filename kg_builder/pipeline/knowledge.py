"""Knowledge acquisition for a source entity S (DESIGN 4.1): the three knowledge types.

* **structural**: S's edges in the graph, as ``(head name, relation, tail name)``;
* **descriptive**: documents about S from the corpus (hybrid BM25 + MiniLM recall), ordered by the
  utility reranker (or by similarity alone, the ablation), compressed to a token budget by the LLM
  when one is configured, otherwise by extractive MMR; the document ids are kept for provenance;
* **inherited**: the entities most like S (same ``type`` when S has one and the graph knows it,
  nearest by MiniLM over ``"name: description"`` otherwise) and the relations they have, which the
  relation retriever uses as its prior. Against the live graph the nearest come from the domain's
  persistent :class:`~kg_builder.retrieval.entity_index.EntityIndex` (only S is embedded per
  job); against an in-memory snapshot (evaluation) every entity is embedded once per snapshot.

:meth:`Knowledge.prompt_parts` renders them for the LLM prompts (factorisation prompting: the
``entity_generation`` template walks through them one at a time before combining).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from kg_builder.llm.base import LLM, LLMError, OnError
from kg_builder.llm.prompts import format_documents, format_triples, get_prompt
from kg_builder.llm.schemas import Summary as LLMSummary
from kg_builder.models.encoder import TextEncoder
from kg_builder.retrieval.entity_index import EntityIndex
from kg_builder.retrieval.hybrid import Hit, HybridRetriever
from kg_builder.retrieval.summarise import ExtractiveSummariser
from kg_builder.retrieval.utility import UtilityReranker, fact_text, knowledge_query

from .snapshot import EntityInfo, GraphSnapshot

log = logging.getLogger(__name__)

#: How deep :meth:`KnowledgeBuilder.similar` searches the entity index at most for entities the
#: snapshot sees (and, for a typed S, of S's type) before it settles for fewer.
SIMILAR_MAX_DEPTH = 1024


class Knowledge(BaseModel):
    """What the pipeline knows about S before it generates anything."""

    entity: EntityInfo
    in_graph: bool
    structural: list[tuple[str, str, str]] = Field(default_factory=list)
    descriptive: str = ""
    document_ids: list[str] = Field(default_factory=list)
    documents: list[Hit] = Field(default_factory=list)
    document_utility: dict[str, float] = Field(default_factory=dict)
    ranking: Literal["utility", "similarity", "none"] = "none"
    summary_by: Literal["llm", "extractive", "none"] = "none"
    similar_entities: list[str] = Field(default_factory=list)
    similar_names: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="Degradations, e.g. the LLM summary failed.")

    model_config = {"arbitrary_types_allowed": True}

    def query_text(self) -> str:
        """S in one text (name, description, summary) for the relation bi-encoder."""
        parts = [self.entity.text()]
        if self.descriptive:
            parts.append(self.descriptive)
        return " ".join(parts)

    def prompt_parts(self, inherited_relations: Sequence[str] = ()) -> dict[str, str]:
        inherited = (f"Entities like {self.entity.name}: {', '.join(self.similar_names[:8]) or '(none)'}. "
                     f"Relations they usually have: {', '.join(inherited_relations) or '(none)'}.")
        return {
            "structural": format_triples(self.structural[:30]),
            "descriptive": self.descriptive or self.entity.description or "(no text)",
            "inherited": inherited,
        }


class KnowledgeBuilder:
    """Builds :class:`Knowledge` for one S against a :class:`GraphSnapshot`.

    Args:
        snapshot: the graph as the pipeline sees it.
        encoder: MiniLM (similar entities; the extractive summariser).
        retriever: hybrid retriever over the domain's corpus; None = no descriptive knowledge.
        utility: the trained utility reranker; used when ``use_utility`` (else similarity order).
        llm: summarises when given (``summarise`` prompt), else extractive MMR.
        candidates / documents / token_budget: recall depth, documents kept, summary budget.
        similar_k: how many similar entities give the inherited knowledge.
    """

    def __init__(self, snapshot: GraphSnapshot, encoder: TextEncoder, *, retriever: HybridRetriever | None = None,
                 utility: UtilityReranker | None = None, llm: LLM | None = None, use_utility: bool = True,
                 candidates: int = 20, documents: int = 5, token_budget: int = 160, similar_k: int = 10):
        self.snapshot = snapshot
        self.encoder = encoder
        self.retriever = retriever
        self.utility = utility
        self.llm = llm
        self.use_utility = use_utility and utility is not None
        self.candidates = candidates
        self.documents = documents
        self.token_budget = token_budget
        self.similar_k = similar_k
        self.summariser = ExtractiveSummariser(encoder)
        self._entity_ids: list[str] = []
        self._entity_vectors: np.ndarray | None = None

    # --- inherited -----------------------------------------------------------------------------
    def _vectors(self) -> tuple[list[str], np.ndarray]:
        if self._entity_vectors is None or len(self._entity_ids) != len(self.snapshot.entities):
            self._entity_ids = list(self.snapshot.entities)
            texts = [self.snapshot.entities[i].text() for i in self._entity_ids]
            self._entity_vectors = self.encoder.encode(texts)
        return self._entity_ids, self._entity_vectors

    def similar(self, entity: EntityInfo, k: int | None = None) -> list[str]:
        """Ids of the ``k`` entities most like S (same type first when S has a known type)."""
        k = k or self.similar_k
        index = self.snapshot.entity_index(self.encoder)
        if index is not None:
            order = self._similar_from_index(index, entity, k)
        else:
            ids, vectors = self._vectors()
            if not ids:
                return []
            scores = vectors @ self.encoder.encode([entity.text()])[0]
            order = [ids[i] for i in np.argsort(-scores) if ids[i] != entity.id]
        if entity.type:
            entities = self.snapshot.entities
            same = [i for i in order if entities[i].type == entity.type]
            if same:
                order = same + [i for i in order if entities[i].type != entity.type]
        return order[:k]

    def _similar_from_index(self, index: EntityIndex, entity: EntityInfo, k: int) -> list[str]:
        """Nearest entities of the index that this snapshot sees (its domain, not ``exclude_job``'s),
        searching deeper until ``k`` are found (``k`` of S's type when S has one) or the index ends."""
        query = self.encoder.encode([entity.text()])[0]
        depth = max(4 * k, k + 20)
        while True:
            hits = [node_id for node_id, _ in index.search(query, depth) if node_id != entity.id]
            self.snapshot.prefetch(hits)
            order = [i for i in hits if i in self.snapshot.entities]
            enough = [i for i in order if self.snapshot.entities[i].type == entity.type] if entity.type else order
            if len(enough) >= k or depth >= len(index) or depth >= SIMILAR_MAX_DEPTH:
                return order
            depth *= 4

    # --- descriptive ---------------------------------------------------------------------------
    def _documents(self, entity: EntityInfo, knowledge: Knowledge) -> None:
        if self.retriever is None or not len(self.retriever.corpus):
            return
        # S's knowledge, not only its name: description and known facts (the query the utility
        # model was trained with, kg_builder.retrieval.utility.knowledge_query).
        query = knowledge_query(entity.text(), [fact_text(*triple) for triple in knowledge.structural])
        hits = self.retriever.run(query, k=self.candidates).hits
        if self.use_utility and self.utility is not None:
            native = self.snapshot.native(entity.id)
            known = {n for e in self.snapshot.out_edges(entity.id) + self.snapshot.in_edges(entity.id)
                     for n in (self.snapshot.native(e.head), self.snapshot.native(e.tail)) if n and n != native}
            ranked = self.utility.run(entity.name, hits, entity_id=native if knowledge.in_graph else None,
                                      known_neighbours=known, query=query)
            hits = [r.hit for r in ranked.hits]
            knowledge.document_utility = {r.doc_id: r.utility for r in ranked.hits[: self.documents]}
            knowledge.ranking = "utility"
        else:
            knowledge.document_utility = {h.doc_id: h.score for h in hits[: self.documents]}
            knowledge.ranking = "similarity"
        top = hits[: self.documents]
        knowledge.documents = top
        if self.llm is not None and top:
            try:
                self._llm_summary(entity, top, knowledge)
                return
            except LLMError as e:  # degrade to the extractive summary, and say so
                knowledge.notes.append(f"LLM summary failed ({e}); used the extractive summary")
                log.warning("LLM summary for %r failed (%s); using the extractive summary", entity.name, e)
        summary = self.summariser.run(entity.name, top, self.token_budget)
        knowledge.descriptive, knowledge.document_ids = summary.text, summary.document_ids
        knowledge.summary_by = "extractive" if summary.text else "none"

    def _llm_summary(self, entity: EntityInfo, hits: Sequence[Hit], knowledge: Knowledge) -> None:
        assert self.llm is not None
        prompt = get_prompt("summarise")
        messages = prompt.render(entity=entity.name, entity_type=entity.type or "(unknown)",
                                 documents=format_documents((h.doc_id, h.text) for h in hits),
                                 max_words=max(20, int(self.token_budget * 0.75)))
        answer = self.llm.invoke(messages, schema=LLMSummary, on_error=OnError.RAISE).parsed
        assert isinstance(answer, LLMSummary)
        offered = {h.doc_id for h in hits}
        knowledge.descriptive = answer.text
        knowledge.document_ids = [d for d in answer.used_document_ids if d in offered] or [h.doc_id for h in hits]
        knowledge.summary_by = "llm"

    # --- all three ------------------------------------------------------------------------------
    def build(self, entity: EntityInfo) -> Knowledge:
        in_graph = entity.id in self.snapshot.entities
        knowledge = Knowledge(entity=entity, in_graph=in_graph)
        names = self.snapshot.entities
        # S's edges (their far ends come with them in a lazy snapshot, so the names cost no read)
        for edge in (self.snapshot.out_edges(entity.id) + self.snapshot.in_edges(entity.id))[:60]:
            knowledge.structural.append((names[edge.head].name if edge.head in names else edge.head, edge.relation,
                                         names[edge.tail].name if edge.tail in names else edge.tail))
        self._documents(entity, knowledge)
        knowledge.similar_entities = self.similar(entity)
        self.snapshot.prefetch(knowledge.similar_entities)
        knowledge.similar_names = [names[i].name for i in knowledge.similar_entities]
        return knowledge


__all__ = ["Knowledge", "KnowledgeBuilder"]
