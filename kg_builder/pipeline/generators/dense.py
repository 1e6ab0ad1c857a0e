"""``dense``: the SimKGC-style bi-encoder (:mod:`kg_builder.models.dense`): embeds "S text, R
text" and retrieves the nearest entity texts; works for an S the graph has never seen."""

from __future__ import annotations

from dataclasses import dataclass

from kg_builder.graphdb import schema
from kg_builder.models.dense import DenseKGModel

from ..knowledge import Knowledge
from ..relations import RelationCandidate
from .base import GeneratorContext, Proposal, register


@register("dense")
@dataclass
class DenseGenerator(GeneratorContext):
    model: DenseKGModel | None = None
    name: str = "dense"

    def propose(self, knowledge: Knowledge, relation: RelationCandidate, k: int) -> list[Proposal]:
        if self.model is None or relation.relation not in self.model.relation_texts:
            return []
        source, known = self.allowed(knowledge, relation.relation)
        native = self.snapshot.native(knowledge.entity.id)
        depth = k + len(known) + 1
        if native is not None and native in self.model.entity_index:
            ranked = self.model.top_k(native, relation.relation, k=depth)
        else:
            ranked = self.model.top_k_text(knowledge.entity.text(), relation.relation, k=depth)
        out = []
        for native_target, score in ranked:
            target = schema.graph_key(self.snapshot.domain, native_target)
            if target == source or target in known or target not in self.snapshot.entities:
                continue
            out.append(Proposal(relation=relation.relation, target_id=target,
                                target_name=self.snapshot.entities[target].name, generator=self.name,
                                model=self.model.name or f"dense-{self.snapshot.domain}", score=score,
                                rank=len(out) + 1))
            if len(out) == k:
                break
        return out

    @classmethod
    def build(cls, *, snapshot, models, options, llm=None) -> DenseGenerator:
        return cls(snapshot=snapshot, skip_known=options.skip_known, model=models.dense)


__all__ = ["DenseGenerator"]
