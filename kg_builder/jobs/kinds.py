"""Job kinds other than ``entities``: what :func:`kg_builder.jobs.runner.run_job` does with each
entity of a ``c2c`` or a ``titles`` job (the lease, batching, cancellation and replay rules of the
runner hold for every kind).

* ``titles`` (:class:`TitlesWork`): each entity is an ``Item`` of a product domain (by id, or by
  name with ``label: "Item"``); its raw title (the node's name) and brand (its ``has brand``
  edge) go through the offline normaliser (:class:`~kg_builder.products.titles.TitleNormaliser`,
  with the trailing category phrases learnt from the dataset's categories when the dataset is on
  disk) or, in LLM mode, the LLM rewrite with the offline result as fallback; the result is
  stored on the Item beside the raw title (``title_normalised``, ``title_source``, ...).
* ``c2c`` (:class:`C2CWork`): each entity is a ``Category`` of a product domain; the domain's
  trained C2C model (``kgforge train c2c``) ranks the categories bought with it, and the LLM
  method (when an LLM is configured) proposes names that are mapped to existing categories; the
  best ones above the model's floor become ``COMPLEMENTARY_TO`` edges with confidence, sources
  and evidence. A name that maps to no category is reported in the entity's notes, never written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from kg_builder.errors import InvalidInputError
from kg_builder.graphdb import GraphStore, schema
from kg_builder.llm.base import LLM
from kg_builder.pipeline.pipeline import PipelineOptions, SourceEntity
from kg_builder.pipeline.snapshot import EntityInfo, GraphSnapshot
from kg_builder.settings import Settings

from .job_store import BatchCounts, EntityOutcome

log = logging.getLogger(__name__)


class KindWork(Protocol):
    """One job kind's work on one entity: ``(outcome, triples written)``; raises InvalidInputError
    for an entity it cannot take (the runner marks that entity failed)."""

    def run(self, position: int, entity: SourceEntity) -> tuple[EntityOutcome, int]: ...


def resolve_node(snapshot: GraphSnapshot, entity: SourceEntity, label: str) -> EntityInfo:
    """The node of ``label`` an entity names (by id, or by name among nodes of ``label``)."""
    if entity.id is not None:
        found = snapshot.by_id(entity.id)
        if found is None or schema.label_for_key(found.id) != label:
            raise InvalidInputError("id", f"{entity.id!r} is not a {label} of domain {snapshot.domain!r}")
        return found
    found = [e for e in snapshot.find(entity.name) if schema.label_for_key(e.id) == label]
    if not found:
        raise InvalidInputError("name", f"no {label} of domain {snapshot.domain!r} is named {entity.name!r}")
    return found[0]


class TitlesWork:
    """A ``titles`` job (module docstring)."""

    def __init__(self, settings: Settings, store: GraphStore, snapshot: GraphSnapshot, llm: LLM | None, job_id: str):
        from kg_builder.products.titles import LLMTitleRewriter, TitleNormaliser, dataset_normaliser

        self.store, self.snapshot, self.job_id = store, snapshot, job_id
        try:
            from kg_builder.datasets import load_dataset

            offline = dataset_normaliser(load_dataset(snapshot.domain, settings.data_dir))
        except Exception as e:  # no dataset on disk: the normaliser runs without learnt phrases
            log.info("titles job %s: no trailing category phrases for %s (%s)", job_id, snapshot.domain, e)
            offline = TitleNormaliser()
        self.normaliser = LLMTitleRewriter(llm, offline=offline) if llm is not None else offline

    def run(self, position: int, entity: SourceEntity) -> tuple[EntityOutcome, int]:
        from kg_builder.products.titles import write_normalised_titles

        item = resolve_node(self.snapshot, entity, schema.ITEM)
        brands = [self.snapshot.entities[e.tail].name for e in self.snapshot.out_edges(item.id)
                  if e.relation == "has brand"]
        result = self.normaliser.run(item.name, brand=brands[0] if brands else None, item_id=item.id)
        report = write_normalised_titles(self.store, [result], job_id=self.job_id, existing={item.id})
        notes = [f"normalised: {result.text}"] + ([result.source.note] if result.source.note else [])
        return EntityOutcome(position, node_id=item.id, generated=1, kept=report.written, notes=notes), 0


class C2CWork:
    """A ``c2c`` job (module docstring)."""

    def __init__(self, settings: Settings, store: GraphStore, snapshot: GraphSnapshot, llm: LLM | None, job_id: str,
                 options: PipelineOptions):
        from kg_builder.products.c2c_model import C2CModel, default_model_name

        self.store, self.snapshot, self.job_id, self.options = store, snapshot, job_id, options
        self.model = C2CModel.load(default_model_name(snapshot.domain), settings=settings)
        self.llm_method = None
        if llm is not None:
            from kg_builder.models.encoder import TextEncoder, encoder_path
            from kg_builder.products.c2c import CategoryMapper, LLMComplements

            mapper = CategoryMapper(self.model.catalogue, TextEncoder(encoder_path(settings)))
            self.llm_method = LLMComplements(llm, self.model.catalogue, mapper)

    def run(self, position: int, entity: SourceEntity) -> tuple[EntityOutcome, int]:
        from kg_builder.products.c2c import write_complementary

        category = resolve_node(self.snapshot, entity, schema.CATEGORY)
        k = self.options.max_per_entity
        results = {r.target: r for r in self.model.propose(category.id, floor=self.options.min_confidence, k=k)}
        notes = []
        generated = len(self.model.proposals.get(category.id, []))
        if self.llm_method is not None:
            proposal = self.llm_method.run(category.id, k=k)
            generated += len(proposal.results) + len(proposal.unmapped)
            for r in proposal.results:  # agreement with the trained ranking: one edge, both sources
                if r.target in results:
                    known = results[r.target]
                    results[r.target] = known.model_copy(update={
                        "sources": tuple(dict.fromkeys((*known.sources, *r.sources))),
                        "evidence": (*known.evidence, *r.evidence)})
                elif r.confidence >= (self.options.min_confidence or self.model.floor):
                    results[r.target] = r
            notes += [f"not a category of {self.snapshot.domain}: {u.name!r} ({u.reason})" for u in proposal.unmapped]
        skipped: list[str] = []
        kept = sorted(results.values(), key=lambda r: -r.confidence)[:k]
        written = write_complementary(self.store, category.id, kept, job_id=self.job_id, skipped=skipped)
        notes += [f"not written (no such category in the graph): {key}" for key in skipped]
        if not kept:
            best = self.model.proposals.get(category.id, [])
            notes.append("no complementary category reached the confidence floor "
                         f"{self.options.min_confidence or self.model.floor:.2f}"
                         + (f" (best: {best[0].name}, {best[0].confidence:.2f})" if best else ""))
        return EntityOutcome(position, node_id=category.id, generated=generated, kept=written, notes=notes), written


def kind_work(kind: str, settings: Settings, store: GraphStore, snapshot: GraphSnapshot, llm: LLM | None,
              job_id: str, options: PipelineOptions) -> KindWork:
    """The work of a job ``kind`` other than ``entities``."""
    from kg_builder.products.domain import is_product_domain

    if not is_product_domain(snapshot.domain):
        raise InvalidInputError("domain", f"a {kind} job runs on a product domain (an Amazon dataset), "
                                          f"not {snapshot.domain!r}")
    if kind == "titles":
        return TitlesWork(settings, store, snapshot, llm, job_id)
    if kind == "c2c":
        return C2CWork(settings, store, snapshot, llm, job_id, options)
    raise InvalidInputError("kind", f"unknown job kind {kind!r}")


def run_kind_batch(work: KindWork, batch: Sequence[tuple[int, SourceEntity]], *,
                   interrupts: tuple[type[BaseException], ...] = ()) -> tuple[list[EntityOutcome], BatchCounts]:
    """Run ``work`` on a batch; an entity that fails is marked failed with the reason, the rest go on."""
    from kg_builder.errors import RetryableError

    outcomes, written = [], 0
    for position, entity in batch:
        try:
            outcome, triples = work.run(position, entity)
        except (RetryableError, *interrupts):
            raise
        except InvalidInputError as e:
            outcomes.append(EntityOutcome(position, error=f"invalid input: {e.field}: {e.reason}"))
            continue
        except Exception as e:
            log.exception("entity %d (%r) failed", position, entity.name)
            outcomes.append(EntityOutcome(position, error=f"internal error ({type(e).__name__}): {e}"))
            continue
        outcomes.append(outcome)
        written += triples
    return outcomes, BatchCounts(triples_written=written)


__all__ = ["C2CWork", "KindWork", "TitlesWork", "kind_work", "resolve_node", "run_kind_batch"]
