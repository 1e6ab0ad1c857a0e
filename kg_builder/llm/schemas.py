"""Pydantic models of the LLM's structured answers, and the relation-pool check.

Each model is sent to the server as a JSON schema (``response_format``) and every answer is
validated against it (see :mod:`kg_builder.llm.base`). ``extra="forbid"`` makes the schemas say
``additionalProperties: false``, which tightens vLLM's guided decoding and rejects stray keys.

A relation chosen by the LLM is only used when it is in the relation pool:
:func:`check_relations_in_pool` splits an answer into accepted and rejected choices and logs every
rejection.

Names (a target's ``name``, a chosen ``relation``) are asked for with ``minLength: 1`` in the JSON
schema but not refused by validation: one blank or punctuation-only name must cost that one item,
not the whole answer (and a re-ask). The consumer drops such an item with a log line and a note
(:class:`~kg_builder.pipeline.generators.llm.LLMGenerator`; the pool check rejects it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ChosenRelation(BaseModel):
    """One relation the LLM says applies to the source entity, with its reason."""

    model_config = _STRICT

    relation: str = Field(description="A relation name copied from the candidate list.",
                          json_schema_extra={"minLength": 1})
    reason: str = Field(description="One sentence: why the relation applies to this entity.")


class RelationChoice(BaseModel):
    """Answer of ``relation_filter``: the candidate relations that truly apply to S."""

    model_config = _STRICT

    relations: list[ChosenRelation] = Field(description="Applicable relations; empty when none applies.")


class GeneratedTarget(BaseModel):
    """One target entity T proposed for (S, R)."""

    model_config = _STRICT

    name: str = Field(description="The target entity's usual name.", json_schema_extra={"minLength": 1})
    type: str = Field(min_length=1, description="Its type, e.g. Brand, Category, Person, Place.")
    evidence: str = Field(description="The knowledge (neighbour, text, type) that supports the triple.")


class GeneratedTargets(BaseModel):
    """Answer of ``entity_generation``: targets T for one relation R of S."""

    model_config = _STRICT

    targets: list[GeneratedTarget] = Field(description="Proposed targets, most certain first; may be empty.")


class Summary(BaseModel):
    """Answer of ``summarise``: a compressed summary of the documents about S, with provenance."""

    model_config = _STRICT

    text: str = Field(description="The summary, within the requested length.")
    used_document_ids: list[str] = Field(description="Ids of the documents the summary draws on.")


# --- the product graph (issue 10) ---------------------------------------------------------------
class TitleRewrite(BaseModel):
    """The structured answer of prompt ``title_rewrite@v1`` (:mod:`kg_builder.products.titles`)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(description="One coherent product description in plain words.", min_length=1)
    brand: str | None = Field(None, description="The brand, or null when the title names none.")
    product_type: str | None = Field(None, description="What the product is, in two or three words.")
    attributes: dict[str, str] = Field(default_factory=dict,
                                       description="Key attributes: size, colour, count, model, material.")


class ComplementaryCategoryName(BaseModel):
    """One category the LLM says is bought together with the source category."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(description="A product category name, e.g. 'toner cartridges'.",
                      json_schema_extra={"minLength": 1})
    reason: str = Field(description="One sentence: why it is bought with or used alongside the source.")


class ComplementaryCategoryNames(BaseModel):
    """Answer of ``complementary_categories@v1`` (:mod:`kg_builder.products.c2c`): complementary categories, most certain first."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    categories: list[ComplementaryCategoryName] = Field(
        description="Complementary categories (not substitutes), most certain first; may be empty.")


class PoolCheck(BaseModel):
    """The result of :func:`check_relations_in_pool`.

    ``accepted`` holds the choices inside the pool (relation renamed to the pool's spelling,
    duplicates dropped); ``rejected`` the ones outside it, which must never be used.
    """

    accepted: list[ChosenRelation]
    rejected: list[ChosenRelation]

    @property
    def relations(self) -> list[str]:
        """The accepted relation names, in answer order."""
        return [c.relation for c in self.accepted]


def _key(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).casefold()


def check_relations_in_pool(
    choice: RelationChoice, pool: Iterable[str], *, entity: str | None = None
) -> PoolCheck:
    """Keep the chosen relations that are in ``pool``; report (log and return) the others.

    Matching is exact, then insensitive to case, spaces and underscores ("produced by" matches
    ``PRODUCED_BY``); an accepted choice carries the pool's spelling. A relation chosen twice is kept
    once.

    Args:
        choice: the LLM's answer.
        pool: the candidate relation names that were offered (the relation pool or its subset).
        entity: the source entity, only for the log line.
    """
    names = list(pool)
    exact = set(names)
    loose = {_key(n): n for n in names}
    accepted: list[ChosenRelation] = []
    rejected: list[ChosenRelation] = []
    seen: set[str] = set()
    for c in choice.relations:
        canonical = c.relation if c.relation in exact else loose.get(_key(c.relation))
        if canonical is None:
            rejected.append(c)
            continue
        if canonical in seen:
            continue
        seen.add(canonical)
        accepted.append(c if canonical == c.relation else c.model_copy(update={"relation": canonical}))
    if rejected:
        logger.warning(
            "LLM chose %d relation(s) outside the pool%s; rejected, not used: %s",
            len(rejected),
            f" for {entity!r}" if entity else "",
            ", ".join(repr(c.relation) for c in rejected),
        )
    return PoolCheck(accepted=accepted, rejected=rejected)


__all__ = [
    "ChosenRelation",
    "GeneratedTarget",
    "GeneratedTargets",
    "PoolCheck",
    "RelationChoice",
    "Summary",
    "check_relations_in_pool",
]
