"""``llm``: the ``entity_generation`` prompt (factorisation over structural, descriptive and
inherited knowledge), ``samples`` independent answers; names are matched to known entities by
normalised name, the rest become new entities at resolution."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kg_builder.llm.base import LLM, LLMError, OnError
from kg_builder.llm.prompts import get_prompt
from kg_builder.llm.schemas import GeneratedTargets
from kg_builder.store import schema

from ..knowledge import Knowledge
from ..relations import RelationCandidate
from .base import GeneratorContext, Proposal, register

log = logging.getLogger(__name__)


@register("llm")
@dataclass
class LLMGenerator(GeneratorContext):
    llm: LLM | None = None
    samples: int = 3
    name: str = "llm"
    errors: list[str] = field(default_factory=list)

    def propose(self, knowledge: Knowledge, relation: RelationCandidate, k: int) -> list[Proposal]:
        if self.llm is None:
            return []
        source, known = self.allowed(knowledge, relation.relation)
        inherited = sorted(self.snapshot.relation_frequency(knowledge.similar_entities).items(), key=lambda x: -x[1])
        parts = knowledge.prompt_parts([name for name, _ in inherited[:8]])
        messages = get_prompt("entity_generation").render(
            entity=knowledge.entity.name, entity_type=knowledge.entity.type or "(unknown)",
            relation=relation.relation, relation_description=relation.description, max_targets=k, **parts)
        out: list[Proposal] = []
        for sample in range(self.samples):
            try:
                answer = self.llm.invoke(messages, schema=GeneratedTargets, on_error=OnError.RAISE).parsed
            except LLMError as e:
                self.errors.append(f"{knowledge.entity.name} / {relation.relation}: {e}")
                log.warning("LLM generation failed for %r %s: %s", knowledge.entity.name, relation.relation, e)
                break
            assert isinstance(answer, GeneratedTargets)
            rank = 0
            for target in answer.targets[:k]:
                matches = [m for m in self.snapshot.find(target.name)
                           if not m.type or schema.normalize_name(m.type) == schema.normalize_name(target.type)]
                target_id = matches[0].id if matches else None
                if target_id == source or target_id in known or schema.normalize_name(target.name) == \
                        schema.normalize_name(knowledge.entity.name):
                    continue
                rank += 1
                out.append(Proposal(relation=relation.relation, target_name=target.name, target_id=target_id,
                                    target_type=target.type, generator=self.name, model=self.llm.model_name,
                                    score=1.0 / rank, rank=rank, sample=sample,
                                    evidence=list(knowledge.document_ids)))
        return out

    @classmethod
    def build(cls, *, snapshot, models, options, llm=None) -> LLMGenerator | None:
        if llm is None:
            return None
        return cls(snapshot=snapshot, skip_known=options.skip_known, llm=llm, samples=options.llm_samples)


__all__ = ["LLMGenerator"]
