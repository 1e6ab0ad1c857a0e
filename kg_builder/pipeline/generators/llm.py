"""``llm``: the ``entity_generation`` prompt (factorisation over structural, descriptive and
inherited knowledge), answered by several distinct samples; names are matched to known entities by
normalised name, the rest become new entities at resolution.

Samples differ. :meth:`~kg_builder.llm.base.LLM.sampling_plan` turns ``samples`` (the job's
``llm_samples``) into distinct requests: every model of ``KGFORGE_LLM_MODELS`` (default: the one
``KGFORGE_LLM_MODEL``) with seeds ``KGFORGE_LLM_SEED + i`` at ``KGFORGE_LLM_TEMPERATURE``
(default 0.7). At temperature 0 a model is asked once: more requests would repeat its answer.
How agreeing samples are counted is :func:`~kg_builder.pipeline.generators.base.vote`'s rule:
samples of one model with the same answer are one vote, distinct models are distinct votes.

Calls run concurrently. :meth:`LLMGenerator.propose_many` sends every request of one entity
(relations x models x samples) at once from a pool of ``llm.max_concurrency`` threads; the LLM's
own bound (its semaphore) still caps the requests in flight. ``propose`` is ``propose_many`` for one
relation.

Provenance. Each proposal records the prompt id (``entity_generation@v1``), the LLM's evidence
sentence for that target, the model, temperature and seed of its request.

Bad answers cost only themselves. A failed request (server down after retries, JSON still invalid
after the re-ask) costs its sample: one note per relation in :attr:`LLMGenerator.errors` (the
pipeline copies them into the entity's errors) and a log line. A target name with no letter or
digit (``normalize_name(name) == ""``: punctuation or blanks only), with control characters, or
longer than :data:`MAX_NAME_CHARS` costs that target: a note and a log line; the answer's other
targets stay.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from kg_builder.llm.base import LLM, LLMError, Messages, OnError, Sampling
from kg_builder.llm.prompts import PromptTemplate, get_prompt
from kg_builder.llm.schemas import GeneratedTarget, GeneratedTargets
from kg_builder.graphdb import schema

from ..knowledge import Knowledge
from ..relations import RelationCandidate
from .base import GeneratorContext, Proposal, clip, register

log = logging.getLogger(__name__)

#: The longest target name kept (as long as a job's source entity name may be).
MAX_NAME_CHARS = 300

PROMPT = "entity_generation"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a target entity's name, or ``None`` when it can."""
    if not schema.normalize_name(name):
        return "has no letter or digit"
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        return "contains control characters"
    if len(name) > MAX_NAME_CHARS:
        return f"is longer than {MAX_NAME_CHARS} characters"
    return None


@register("llm")
@dataclass
class LLMGenerator(GeneratorContext):
    """The ``llm`` generator (see the module docstring).

    Args:
        llm: the configured LLM; without one the generator proposes nothing.
        samples: samples per model (``PipelineOptions.llm_samples``).
        prompt: the prompt name (its latest version) or id (``entity_generation@v1``).
    """

    llm: LLM | None = None
    samples: int = 3
    name: str = "llm"
    prompt: str = PROMPT
    errors: list[str] = field(default_factory=list)

    def propose(self, knowledge: Knowledge, relation: RelationCandidate, k: int) -> list[Proposal]:
        return self.propose_many(knowledge, [relation], k)

    def propose_many(self, knowledge: Knowledge, relations: Sequence[RelationCandidate], k: int) -> list[Proposal]:
        """Proposals for every relation in ``relations``, all requests sent concurrently; the same
        list as ``propose`` relation by relation, in relation order."""
        if self.llm is None or not relations:
            return []
        prompt = get_prompt(self.prompt)
        plan = self.llm.sampling_plan(self.samples)
        calls = [(relation, self._messages(prompt, knowledge, relation, k), sampling)
                 for relation in relations for sampling in plan]
        answers = self._ask_all([(messages, sampling) for _, messages, sampling in calls])
        out: list[Proposal] = []
        failed: dict[str, list[str]] = {}
        for (relation, _, sampling), answer in zip(calls, answers, strict=True):
            if isinstance(answer, LLMError):
                failed.setdefault(relation.relation, []).append(f"{sampling.model} sample {sampling.sample}: {answer}")
                continue
            out.extend(self._proposals(knowledge, relation, k, sampling, answer, prompt.id))
        for relation_name, why in failed.items():
            self._note(f"LLM generation failed for {knowledge.entity.name!r} / {relation_name} in {len(why)} of "
                       f"{len(plan)} sample(s); the others count: {'; '.join(why)}")
        return out

    def _messages(self, prompt: PromptTemplate, knowledge: Knowledge, relation: RelationCandidate, k: int) -> Messages:
        inherited = sorted(self.snapshot.relation_frequency(knowledge.similar_entities).items(), key=lambda x: -x[1])
        parts = knowledge.prompt_parts([name for name, _ in inherited[:8]])
        return prompt.render(
            entity=knowledge.entity.name, entity_type=knowledge.entity.type or "(unknown)",
            relation=relation.relation, relation_description=relation.description, max_targets=k, **parts)

    def _ask_all(self, requests: list[tuple[Messages, Sampling]]) -> list[GeneratedTargets | LLMError]:
        """Every request's parsed answer, or the :class:`LLMError` that ended it, in input order.
        Other exceptions are bugs and propagate."""
        llm = self.llm
        assert llm is not None

        def ask(request: tuple[Messages, Sampling]) -> GeneratedTargets | LLMError:
            messages, sampling = request
            try:
                answer = llm.invoke(messages, schema=GeneratedTargets, on_error=OnError.RAISE, sampling=sampling)
            except LLMError as e:
                return e
            assert isinstance(answer.parsed, GeneratedTargets)
            return answer.parsed

        if len(requests) == 1:
            return [ask(requests[0])]
        workers = max(1, min(len(requests), llm.max_concurrency))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kgforge-llm") as pool:
            return list(pool.map(ask, requests))

    def _proposals(self, knowledge: Knowledge, relation: RelationCandidate, k: int, sampling: Sampling,
                   answer: GeneratedTargets, prompt_id: str) -> list[Proposal]:
        assert self.llm is not None
        source, known = self.allowed(knowledge, relation.relation)
        own = schema.normalize_name(knowledge.entity.name)
        model = sampling.model or self.llm.model_name
        out: list[Proposal] = []
        seen: set[str] = set()
        for target in answer.targets[:k]:
            problem = name_problem(target.name)
            if problem is not None:
                self._note(f"LLM target {clip(target.name, 80)!r} for {knowledge.entity.name!r} / {relation.relation} "
                           f"({model} sample {sampling.sample}) {problem}; that target is dropped, the others stay")
                continue
            target_id = self._match(target)
            normalized = schema.normalize_name(target.name)
            if target_id == source or target_id in known or normalized == own:
                continue
            key = target_id or f"name:{normalized}"
            if key in seen:  # the same target twice in one answer
                continue
            seen.add(key)
            rank = len(out) + 1
            out.append(Proposal(relation=relation.relation, target_name=target.name, target_id=target_id,
                                target_type=target.type, generator=self.name, model=model,
                                score=1.0 / rank, rank=rank, sample=sampling.sample,
                                evidence=list(knowledge.document_ids), prompt_version=prompt_id,
                                llm_evidence=clip(target.evidence) or None, temperature=sampling.temperature,
                                seed=sampling.seed))
        return out

    def _match(self, target: GeneratedTarget) -> str | None:
        matches = [m for m in self.snapshot.find(target.name)
                   if not m.type or schema.normalize_name(m.type) == schema.normalize_name(target.type)]
        return matches[0].id if matches else None

    def _note(self, note: str) -> None:
        self.errors.append(note)
        log.warning("%s", note)

    @classmethod
    def build(cls, *, snapshot, models, options, llm=None) -> LLMGenerator | None:
        if llm is None:
            return None
        return cls(snapshot=snapshot, skip_known=options.skip_known, llm=llm, samples=options.llm_samples)


__all__ = ["MAX_NAME_CHARS", "LLMGenerator", "name_problem"]
