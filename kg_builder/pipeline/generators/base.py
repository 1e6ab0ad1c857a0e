"""What every generator shares: the :class:`Proposal` it returns, the :class:`Generator` protocol,
the :class:`GeneratorContext` (snapshot, ``skip_known``), the registry that looks generators up by
name (:func:`register`, :func:`build_generator`), and :func:`vote`, which groups proposals by
target (the consistency signal)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, Field

from kg_builder.errors import InvalidInputError
from kg_builder.store import schema

from ..knowledge import Knowledge
from ..relations import RelationCandidate
from ..snapshot import GraphSnapshot


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
        values are strings, numbers or lists of them)."""
        return {}


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


__all__ = ["Generator", "GeneratorContext", "Proposal", "REGISTRY", "Voted", "build_generator", "register", "vote"]
