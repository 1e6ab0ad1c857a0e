"""``graph``: ComplEx-N3 link prediction (:mod:`kg_builder.models.structural`); S must be an
entity the model was trained on; ranks every known entity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kg_builder.graphdb import schema
from kg_builder.models.structural import ComplEx
from kg_builder.ranking import Query

from ..knowledge import Knowledge
from ..relations import RelationCandidate
from .base import GeneratorContext, Proposal, register


@register("graph")
@dataclass
class GraphGenerator(GeneratorContext):
    model: ComplEx | None = None
    name: str = "graph"

    def propose(self, knowledge: Knowledge, relation: RelationCandidate, k: int) -> list[Proposal]:
        native = self.snapshot.native(knowledge.entity.id)
        if self.model is None or native not in self.model.entity_index or relation.relation not in self.model.relation_index:
            return []
        source, known = self.allowed(knowledge, relation.relation)
        scores = self.model.score([Query(native, relation.relation, False)])[0].astype(np.float64)
        # The score is the softmax probability of T among the entities S does not already have for R
        # (what the confidence model reads as ``p_graph``); the known tails would otherwise take the mass.
        excluded = [self.model.entity_index[n] for n in (native, *(self.snapshot.native(t) for t in known))
                    if n is not None and n in self.model.entity_index]
        scores[excluded] = -np.inf
        top = np.argsort(-scores)[: k + len(excluded) + 1]
        log_z = np.logaddexp.reduce(scores[np.isfinite(scores)])
        out = []
        for i in top:
            target = schema.graph_key(self.snapshot.domain, self.model.entity_ids[i])
            if not np.isfinite(scores[i]) or target == source or target in known or target not in self.snapshot.entities:
                continue
            out.append(Proposal(relation=relation.relation, target_id=target,
                                target_name=self.snapshot.entities[target].name, generator=self.name,
                                model=self.model.meta.get("name", f"structural-{self.snapshot.domain}"),
                                score=float(np.exp(scores[i] - log_z)), rank=len(out) + 1))
            if len(out) == k:
                break
        return out

    @classmethod
    def build(cls, *, snapshot, models, options, llm=None) -> GraphGenerator:
        return cls(snapshot=snapshot, skip_known=options.skip_known, model=models.structural)


__all__ = ["GraphGenerator"]
