"""``corpus``: entities named in S's retrieved documents (the utility-ranked ones), kept when
the relation already points at them elsewhere in the graph (its range); score = document utility x
the entity's share of the relation's range. Evidence = the document ids."""

from __future__ import annotations

from dataclasses import dataclass

from kg_builder.retrieval.utility import EntityMentions

from ..knowledge import Knowledge
from ..relations import RelationCandidate
from .base import GeneratorContext, Proposal, register


@register("corpus")
@dataclass
class CorpusGenerator(GeneratorContext):
    mentions: EntityMentions | None = None
    name: str = "corpus"
    model: str = "mentions"

    def propose(self, knowledge: Knowledge, relation: RelationCandidate, k: int) -> list[Proposal]:
        if self.mentions is None or not knowledge.documents:
            return []
        source, known = self.allowed(knowledge, relation.relation)
        span = self.snapshot.relation_range(relation.relation)
        total = sum(span.values()) or 1
        best: dict[str, tuple[float, str]] = {}
        for hit in knowledge.documents:
            utility = knowledge.document_utility.get(hit.doc_id, 0.0)
            for native in self.mentions.find(hit.text):
                target = f"{self.snapshot.domain}:{native}"
                if target == source or target in known or target not in span:
                    continue
                score = utility * span[target] / total
                if score > best.get(target, (-1.0, ""))[0]:
                    best[target] = (score, hit.doc_id)
        ranked = sorted(best.items(), key=lambda item: -item[1][0])[:k]
        return [Proposal(relation=relation.relation, target_id=target, target_name=self.snapshot.entities[target].name,
                         generator=self.name, model=self.model, score=score, rank=i + 1, evidence=[doc])
                for i, (target, (score, doc)) in enumerate(ranked)]

    @classmethod
    def build(cls, *, snapshot, models, options, llm=None) -> CorpusGenerator:
        mentions = models.utility.mentions if models.utility is not None else None
        return cls(snapshot=snapshot, skip_known=options.skip_known, mentions=mentions,
                   model=f"utility-{snapshot.domain}")


__all__ = ["CorpusGenerator"]
