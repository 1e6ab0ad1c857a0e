"""What every generator shares: the :class:`Proposal` it returns, the :class:`Generator` protocol,
the :class:`GeneratorContext` (snapshot, ``skip_known``), the registry that looks generators up by
name (:func:`register`, :func:`build_generator`), and :func:`vote`, which groups proposals by
target (the consistency signal).

Who votes (:func:`vote`):

* every generator other than ``llm`` is one voter, however many proposals it made;
* an LLM voter is one **sample group** of one **model**: the samples of one model for one (S, R)
  whose answers are the same set of targets (normalised names, or known entity ids) form one
  group and cast one vote, ``llm:<model>#<first sample of the group>``. Three samples that answer
  alike are one voice; three that answer differently are three; two models that agree are two.
  So ``votes`` counts distinct generators, distinct models and distinct answers, never raw calls
  (sending one deterministic prompt three times used to count three times).

An LLM proposal also carries the prompt version it was asked with and the LLM's own evidence
sentence; :meth:`Voted.provenance` turns those into edge properties.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, Field

from kg_builder.errors import InvalidInputError
from kg_builder.graphdb import schema

from ..knowledge import Knowledge
from ..relations import RelationCandidate
from ..snapshot import GraphSnapshot

#: The generator name whose voters are sample groups rather than the generator itself.
LLM_GENERATOR = "llm"


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
    #: LLM proposals: the prompt id (``entity_generation@v1``), the LLM's evidence sentence (cut
    #: to :data:`PROVENANCE_CHARS`), and the sampling of the request that produced it.
    prompt_version: str | None = None
    llm_evidence: str | None = None
    temperature: float | None = None
    seed: int | None = None

    @property
    def key(self) -> str:
        return self.target_id or f"name:{schema.normalize_name(self.target_name)}"


#: The longest text an edge property gets from provenance (the LLM's evidence).
PROVENANCE_CHARS = 500


def clip(text: str, limit: int = PROVENANCE_CHARS) -> str:
    """``text`` with runs of whitespace collapsed, cut to ``limit`` characters (ending in an ellipsis)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class Generator(Protocol):
    """Proposes targets for (S, R). A generator may also define
    ``propose_many(knowledge, relations, k) -> list[Proposal]`` for all of S's kept relations at
    once (the ``llm`` generator does, to run its calls concurrently); the result must equal the
    concatenation of ``propose`` over the relations."""

    name: str

    def propose(self, knowledge: Knowledge, relation: RelationCandidate, k: int) -> list[Proposal]: ...


@dataclass
class GeneratorContext:
    snapshot: GraphSnapshot
    skip_known: bool = True

    def allowed(self, knowledge: Knowledge, relation: str) -> tuple[str, set[str]]:
        source = knowledge.entity.id
        known = self.snapshot.known_tails(source, relation) if self.skip_known else set()
        return source, known


#: name -> the generator class; each has ``build(*, snapshot, models, options, llm)`` returning an
#: instance, or None when it has nothing to run with (the ``llm`` generator without an LLM).
REGISTRY: dict[str, Any] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: make a generator available to jobs under ``name``."""
    def wrap(cls: type) -> type:
        REGISTRY[name] = cls
        return cls
    return wrap


def build_generator(name: str, **context: Any) -> Generator | None:
    """The generator registered as ``name`` built from the pipeline's context (``snapshot``,
    ``models``, ``options``, ``llm``); on a miss the error lists the valid names."""
    if name not in REGISTRY:
        raise InvalidInputError("options.generators", f"unknown generator {name!r}; choose from {sorted(REGISTRY)}")
    return REGISTRY[name].build(**context)


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

    def provenance(self) -> dict[str, Any]:
        """Extra edge properties recording how the proposals came about (stored on the written edge;
        values are strings, numbers or lists of them).

        With LLM proposals: ``llm_prompt`` (prompt id(s), comma-joined), ``llm_models``,
        ``llm_votes`` (sample groups that named the target, the LLM part of :attr:`votes`),
        ``llm_samples`` (raw samples that named it), ``llm_temperature``, ``llm_seeds``, and
        ``llm_evidence`` (the distinct evidence sentences, best rank first, joined by `` | ``, at
        most :data:`PROVENANCE_CHARS` characters). Without LLM proposals: ``{}``.
        """
        llm = sorted((p for p in self.proposals if p.generator == LLM_GENERATOR), key=lambda p: (p.rank, p.sample))
        if not llm:
            return {}
        out: dict[str, Any] = {
            "llm_prompt": ",".join(sorted({p.prompt_version for p in llm if p.prompt_version})),
            "llm_models": sorted({p.model for p in llm}),
            "llm_votes": sum(1 for v in self.voters if v.startswith(f"{LLM_GENERATOR}:")),
            "llm_samples": len({(p.model, p.sample) for p in llm}),
            "llm_seeds": sorted({p.seed for p in llm if p.seed is not None}),
            "llm_evidence": clip(" | ".join(dict.fromkeys(p.llm_evidence for p in llm if p.llm_evidence))),
        }
        temperatures = {p.temperature for p in llm if p.temperature is not None}
        if temperatures:
            out["llm_temperature"] = max(temperatures)
        return {k: v for k, v in out.items() if v not in ("", [])}


def sample_groups(proposals: Sequence[Proposal]) -> dict[tuple[str, str, int], int]:
    """For every LLM sample, the group it belongs to: ``(relation, model, sample) -> first sample``.

    Samples of one model for one relation whose answers name the same set of targets
    (:attr:`Proposal.key`) form a group, named after its lowest sample number. Proposals of one
    source entity only: the answer set is read off the proposals.
    """
    answers: dict[tuple[str, str, int], set[str]] = {}
    for p in proposals:
        if p.generator == LLM_GENERATOR:
            answers.setdefault((p.relation, p.model, p.sample), set()).add(p.key)
    first: dict[tuple[str, str, frozenset[str]], int] = {}
    return {(relation, model, sample): first.setdefault((relation, model, frozenset(keys)), sample)
            for (relation, model, sample), keys in sorted(answers.items(), key=lambda item: item[0])}


def vote(proposals: Sequence[Proposal], *, generators: Sequence[str] | None = None) -> list[Voted]:
    """Group one source entity's proposals by (relation, target) and name their voters.

    A voter is a generator, or for ``llm`` one sample group of one model (``llm:<model>#<group>``,
    see the module docstring): identical LLM answers collapse to one vote.

    ``generators`` restricts which generators' proposals count (the single-generator ablations).
    """
    kept = [p for p in proposals if generators is None or p.generator in generators]
    llm_groups = sample_groups(kept)
    groups: dict[tuple[str, str], list[Proposal]] = {}
    for p in kept:
        groups.setdefault((p.relation, p.key), []).append(p)
    out = []
    for (relation, _), group in groups.items():
        named = next((p for p in group if p.target_id), group[0])
        voters = list(dict.fromkeys(
            f"{p.generator}:{p.model}#{llm_groups[(p.relation, p.model, p.sample)]}"
            if p.generator == LLM_GENERATOR else p.generator for p in group))
        out.append(Voted(relation=relation, target_name=named.target_name, target_id=named.target_id,
                         target_type=next((p.target_type for p in group if p.target_type), None),
                         voters=voters, proposals=list(group)))
    return out


__all__ = [
    "LLM_GENERATOR",
    "PROVENANCE_CHARS",
    "REGISTRY",
    "Generator",
    "GeneratorContext",
    "Proposal",
    "Voted",
    "build_generator",
    "clip",
    "register",
    "sample_groups",
    "vote",
]
