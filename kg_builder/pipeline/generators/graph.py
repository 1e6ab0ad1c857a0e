"""``graph``: ComplEx-N3 link prediction (:mod:`kg_builder.models.structural`); S must be an
entity the model was trained on; ranks every known entity."""

from __future__ import annotations

from dataclasses import dataclass

from kg_builder.models.structural import ComplEx

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
        out = []
        for native_target, score in self.model.top_k(native, relation.relation, k=k + len(known) + 1):
            target = f"{self.snapshot.domain}:{native_target}"
            if target == source or target in known or target not in self.snapshot.entities:
                continue
            out.append(Proposal(relation=relation.relation, target_id=target,
                                target_name=self.snapshot.entities[target].name, generator=self.name,
                                model=self.model.meta.get("name", f"structural-{self.snapshot.domain}"),
                                score=score, rank=len(out) + 1))
            if len(out) == k:
                break
        return out

    @classmethod
    def build(cls, *, snapshot, models, options, llm=None) -> GraphGenerator:
        return cls(snapshot=snapshot, skip_known=options.skip_known, model=models.structural)


__all__ = ["GraphGenerator"]
