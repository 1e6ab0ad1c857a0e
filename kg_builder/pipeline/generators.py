"""Target generation (DESIGN 4.3): several generators propose targets T for (S, R); votes count.

==========  ===================================================================================
graph       ComplEx-N3 link prediction (:mod:`kg_builder.models.structural`): S must be an entity
            the model was trained on; ranks every known entity.
dense       the SimKGC-style bi-encoder (:mod:`kg_builder.models.dense`): embeds "S text, R text"
            and retrieves the nearest entity texts; works for an S the graph has never seen.
corpus      entities named in S's retrieved documents (the utility-ranked ones), kept when the
            relation already points at them elsewhere in the graph (its range); score = document
            utility x the entity's share of the relation's range. Evidence = the document ids.
llm         the ``entity_generation`` prompt (factorisation over structural, descriptive and
            inherited knowledge), ``samples`` independent answers; names are matched to known
            entities by normalised name, the rest become new entities at resolution.
==========  ===================================================================================

Every proposal excludes S itself and, with ``skip_known``, targets S already has for R.
:func:`vote` groups the proposals of all generators (and LLM samples) by target; the number of
distinct voters is the consistency signal the confidence model uses.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, Field

from kg_builder.llm.base import LLM, LLMError, OnError
from kg_builder.llm.prompts import get_prompt
from kg_builder.llm.schemas import GeneratedTargets
from kg_builder.models.dense import DenseKGModel
from kg_builder.models.structural import ComplEx
from kg_builder.retrieval.utility import EntityMentions
from kg_builder.store import schema

from .knowledge import Knowledge
from .relations import RelationCandidate
from .snapshot import GraphSnapshot

log = logging.getLogger(__name__)

GENERATORS = ("graph", "dense", "corpus", "llm")


class Proposal(BaseModel):
    """One generator's answer for (S, R): a known entity (``target_id``) or a new name."""

    relation: str
    target_name: str
    target_id: str | None = None
    target_type: str | None = None
    generator: str
    model: str
    score: float
    rank: int
    sample: int = 0
    evidence: list[str] = Field(default_factory=list)

    @property
    def key(self) -> str:
        return self.target_id or f"name:{schema.normalize_name(self.target_name)}"


class Generator(Protocol):
    name: str

    def propose(self, knowledge: Knowledge, relation: RelationCandidate, k: int) -> list[Proposal]: ...


@dataclass
class _Context:
    snapshot: GraphSnapshot
    skip_known: bool = True

    def allowed(self, knowledge: Knowledge, relation: str) -> tuple[str, set[str]]:
        source = knowledge.entity.id
        known = self.snapshot.known_tails(source, relation) if self.skip_known else set()
        return source, known


@dataclass
class GraphGenerator(_Context):
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


@dataclass
class DenseGenerator(_Context):
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
            target = f"{self.snapshot.domain}:{native_target}"
            if target == source or target in known or target not in self.snapshot.entities:
                continue
            out.append(Proposal(relation=relation.relation, target_id=target,
                                target_name=self.snapshot.entities[target].name, generator=self.name,
                                model=self.model.name or f"dense-{self.snapshot.domain}", score=score,
                                rank=len(out) + 1))
            if len(out) == k:
                break
        return out


@dataclass
class CorpusGenerator(_Context):
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


@dataclass
class LLMGenerator(_Context):
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


class Voted(BaseModel):
    """One target for (S, R) with every proposal that named it."""

    relation: str
    target_name: str
    target_id: str | None
    target_type: str | None
    voters: list[str]
    proposals: list[Proposal]

    @property
    def votes(self) -> int:
        return len(self.voters)

    def best_rank(self, generator: str | None = None) -> int | None:
        ranks = [p.rank for p in self.proposals if generator is None or p.generator == generator]
        return min(ranks) if ranks else None

    @property
    def evidence(self) -> list[str]:
        return list(dict.fromkeys(doc for p in self.proposals for doc in p.evidence))

    @property
    def generators(self) -> list[str]:
        return list(dict.fromkeys(p.generator for p in self.proposals))


def vote(proposals: Sequence[Proposal], *, generators: Sequence[str] | None = None) -> list[Voted]:
    """Group proposals by (relation, target); a voter is a generator, or one LLM sample.

    ``generators`` restricts which generators' proposals count (the single-generator ablations).
    """
    groups: dict[tuple[str, str], list[Proposal]] = {}
    for p in proposals:
        if generators is not None and p.generator not in generators:
            continue
        groups.setdefault((p.relation, p.key), []).append(p)
    out = []
    for (relation, _), group in groups.items():
        named = next((p for p in group if p.target_id), group[0])
        voters = list(dict.fromkeys(f"{p.generator}#{p.sample}" if p.generator == "llm" else p.generator
                                    for p in group))
        out.append(Voted(relation=relation, target_name=named.target_name, target_id=named.target_id,
                         target_type=next((p.target_type for p in group if p.target_type), None),
                         voters=voters, proposals=list(group)))
    return out


__all__ = ["CorpusGenerator", "DenseGenerator", "GENERATORS", "Generator", "GraphGenerator", "LLMGenerator",
           "Proposal", "Voted", "vote"]
