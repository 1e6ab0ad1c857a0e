"""The knowledge pipeline for one source entity S (DESIGN 3-4):

    S -> knowledge -> relations -> targets -> vote -> rerank -> confidence -> resolve -> write

:meth:`KnowledgePipeline.candidates` runs everything up to the scores (no writes) and returns an
:class:`EntityRun` holding every candidate triple with its features; :func:`select` applies the
keep policy: the candidates whose calibrated confidence clears the floor that reached the target
precision (default 0.7) on dev, best first, at most ``max_per_entity``; nothing when nothing clears
it, with a note (``keep_fraction`` and ``rerank_threshold`` remain as comparison policies). On UMLS
test the default kept 213 triples of 40 heads at precision 0.700 / recall 0.591, the reranker's
order alone 0.141 / 0.119 at the same budget (README, Results); :meth:`KnowledgePipeline.write` resolves new target names
(:class:`~kg_builder.resolution.EntityResolver`) and writes the kept triples in one batch with their
confidence, ``sources`` (``generator:model`` of every generator that proposed the triple, plus the
reranker) and ``evidence`` (document ids).

Modes: with an LLM configured and ``use_llm`` on, the relation filter, the summary and the ``llm``
generator use it and degrade to their offline counterparts when it fails (recorded in
``EntityRun.errors``); without one every step is offline. Models are loaded by domain
(:meth:`PipelineModels.load`); a model the options need but nobody trained raises
:class:`~kg_builder.models.saved.ModelNotTrainedError` naming the command that trains it, before any
work is done.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from kg_builder.errors import InvalidInputError
from kg_builder.llm.base import LLM
from kg_builder.models.cross_encoder import TripleCrossEncoder
from kg_builder.models.dense import DenseKGModel
from kg_builder.models.encoder import TextEncoder
from kg_builder.models.relation_classifier import RelationClassifier
from kg_builder.models.saved import ModelNotTrainedError
from kg_builder.models.structural import ComplEx
from kg_builder.resolution import Candidate, EntityIndexNeighbours, EntityResolver
from kg_builder.retrieval.utility import UtilityReranker
from kg_builder.settings import Settings
from kg_builder.graphdb import GraphStore, NodeWrite, TripleWrite
from kg_builder.graphdb import schema
from kg_builder.products.domain import is_product_domain

from .confidence import FEATURES, ConfidenceModel, default_model_name, train_command
from .generators import GENERATORS, Voted, build_generator, vote
from .knowledge import Knowledge, KnowledgeBuilder
from .relations import RelationSelection, RelationSelector
from .snapshot import Edge, EntityInfo, GraphSnapshot

NO_RERANKER = "no-reranker"


class PipelineOptions(BaseModel):
    """A job's options (all optional); validated, with the field named in every error."""

    model_config = {"extra": "forbid"}

    generators: list[str] | None = Field(
        None, description="Generators to run; default: every generator trained for the domain (llm only when an "
                          "LLM is configured); the job's notes name the skipped ones and how to train them.")
    use_llm: bool = True
    use_reranker: bool = True
    use_utility: bool = True
    relations: list[str] | None = Field(None, description="Restrict the relation pool to these names.")
    relation_top_k: int = Field(15, ge=1, le=200)
    max_relations: int = Field(8, ge=1, le=100)
    relation_threshold: float = Field(0.5, ge=0.0, le=1.0)
    keep_own_relations: bool = Field(True, description="Offline filter: keep the relations S already has as head "
                                                       "in the graph first (they apply to S by definition), then "
                                                       "the classifier's best (false: the classifier alone).")
    targets_per_generator: int = Field(10, ge=1, le=100)
    target_precision: float | None = Field(
        None, gt=0.0, le=1.0, description="Keep candidates whose calibrated confidence clears the floor that reached "
                                          "this precision on dev (default: the KGFORGE_KEEP_TARGET_PRECISION setting, 0.7).")
    min_confidence: float | None = Field(None, ge=0.0, le=1.0,
                                         description="An explicit confidence floor (overrides target_precision).")
    max_per_entity: int = Field(10, ge=1, le=200, description="At most this many triples per entity, best first.")
    keep_fraction: float | None = Field(None, gt=0.0, le=1.0,
                                        description="Budget policy instead of the floor: the top share of each "
                                                    "entity's candidates by confidence (comparisons only).")
    rerank_threshold: float | None = Field(None, ge=0.0, le=1.0)
    llm_samples: int = Field(3, ge=1, le=10)
    skip_known: bool = True

    @field_validator("generators")
    @classmethod
    def _known_generators(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - set(GENERATORS))
        if unknown or not value:
            raise ValueError(f"choose from {list(GENERATORS)} (at least one); unknown: {unknown}")
        return list(dict.fromkeys(value))


    def resolve_generators(self, settings: Settings, domain: str, *,
                           llm_configured: bool) -> tuple[PipelineOptions, list[str]]:
        """These options with ``generators`` filled in (when None: every generator trained for
        ``domain``), and notes naming each skipped generator with the command that trains it."""
        from .requirements import plan_generators

        plan = plan_generators(settings, domain, self.generators, llm_configured=llm_configured and self.use_llm)
        if not plan.use:
            raise ModelNotTrainedError(f"no generator is trained for {domain!r}: " + "; ".join(plan.notes()))
        return self.model_copy(update={"generators": plan.use}), plan.notes()


class SourceEntity(BaseModel):
    """S as a job submits it: by ``name`` (matched by normalised name within the domain, among
    nodes of ``label`` when given), or by ``id`` (a graph key such as ``amazon:B00000JBLU`` or
    ``amazon14_office:category:5``, or the dataset's own id such as ``virus``), which must
    name a node of the domain (``category:5`` is tried as ``<domain>:category:5`` too). With only
    an id, the name is the id until the node's name replaces it."""

    model_config = {"extra": "forbid", "str_strip_whitespace": True}

    name: str = Field(None, min_length=1, max_length=300)  # type: ignore[assignment]  (filled from id)
    type: str | None = Field(None, max_length=100)
    description: str | None = Field(None, max_length=5000)
    id: str | None = Field(None, min_length=1, max_length=300)
    label: Literal["Entity", "Item", "Brand", "Category"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _name_or_id(cls, value: Any) -> Any:
        if isinstance(value, dict) and not value.get("name"):
            if not value.get("id"):
                raise ValueError("give the entity's name or its id")
            value = {**value, "name": value["id"]}
        return value

    @field_validator("name")
    @classmethod
    def _has_letters(cls, value: str) -> str:
        if not schema.normalize_name(value):
            raise ValueError("must contain letters or digits")
        return value


class ScoredTriple(BaseModel):
    head: str
    head_name: str
    relation: str
    target_id: str | None
    target_name: str
    target_type: str | None = None
    generators: list[str]
    sources: list[str]
    voters: list[str]
    evidence: list[str] = Field(default_factory=list)
    provenance: dict[str, Any] = Field(default_factory=dict)
    features: list[float]
    reranker_probability: float | None = None
    confidence: float | None = None
    kept: bool = False

    def feature(self, name: str) -> float:
        return self.features[FEATURES.index(name)]


class EntityRun(BaseModel):
    entity: EntityInfo
    knowledge: Knowledge
    relations: RelationSelection
    proposals: int
    candidates: list[ScoredTriple]
    timings: dict[str, float] = Field(default_factory=dict)
    errors: list[str] = Field(default_factory=list)

    @property
    def kept(self) -> list[ScoredTriple]:
        return [c for c in self.candidates if c.kept]


@dataclass
class PipelineModels:
    """Every trained model of one domain the pipeline may use (None = not used)."""

    domain: str
    encoder: TextEncoder
    utility: UtilityReranker | None = None
    classifier: RelationClassifier | None = None
    structural: ComplEx | None = None
    dense: DenseKGModel | None = None
    reranker: TripleCrossEncoder | None = None
    confidence: ConfidenceModel | None = None
    confidence_no_reranker: ConfidenceModel | None = None
    mode: str = "offline"
    target_precision: float = 0.7

    @classmethod
    def load(cls, settings: Settings, domain: str, options: PipelineOptions | None = None, *,
             encoder: TextEncoder | None = None, calibrated: bool = True) -> PipelineModels:
        """Load what ``options`` need; raises ModelNotTrainedError (naming the command) before any work."""
        from kg_builder.retrieval.saved_utility import load_utility

        options = options or PipelineOptions()
        if options.generators is None:
            options, _ = options.resolve_generators(settings, domain, llm_configured=bool(settings.llm_base_url))
        encoder = encoder or TextEncoder()
        mode = "llm" if (settings.llm_base_url and options.use_llm and "llm" in options.generators) else "offline"
        models = cls(domain=domain, encoder=encoder, mode=mode, target_precision=settings.keep_target_precision)
        try:  # optional (no corpus, e.g. FB15k-237): knowledge is then the graph's structure only
            models.utility = load_utility(settings, domain, encoder)
        except ModelNotTrainedError:
            if "corpus" in options.generators:
                raise
            models.utility = None
        models.classifier = RelationClassifier.load(f"relations-{domain}", settings=settings)
        if "graph" in options.generators:
            models.structural = ComplEx.load(f"structural-{domain}", settings=settings)
        if "dense" in options.generators:
            models.dense = DenseKGModel.load(f"dense-{domain}", settings=settings)
        if options.use_reranker:
            models.reranker = TripleCrossEncoder.load(f"reranker-{domain}", settings=settings)
        if calibrated:
            name = default_model_name(domain, mode)
            if options.use_reranker:
                models.confidence = ConfidenceModel.load(name, settings=settings)
                models.confidence.check_mode(mode)
            else:
                models.confidence_no_reranker = ConfidenceModel.load(f"{name}-{NO_RERANKER}", settings=settings)
                models.confidence_no_reranker.check_mode(mode)
        return models


def features_of(voted: Voted, relation_score: float, relation_probability: float, reranker_logit: float, *,
                range_count: int = 0, reranker_threshold_logit: float = 0.0, own_count: int = 0) -> list[float]:
    """The confidence model's feature vector of one voted candidate (names in ``confidence.FEATURES``)."""
    def rr(generator: str) -> float:
        rank = voted.best_rank(generator)
        return 1.0 / rank if rank else 0.0

    p_graph = max((p.score for p in voted.proposals if p.generator == "graph"), default=0.0)
    values = {"reranker_logit": reranker_logit, "votes": float(voted.votes), "rr_graph": rr("graph"),
              "rr_dense": rr("dense"), "rr_corpus": rr("corpus"), "rr_llm": rr("llm"),
              "relation_retrieval": relation_score, "relation_probability": relation_probability,
              "p_graph": p_graph, "log_range": math.log1p(range_count),
              "reranker_margin": reranker_logit - reranker_threshold_logit,
              "log_joint": math.log(max(relation_probability * p_graph, 1e-6)),
              "new_entity": float(voted.target_id is None), "log_own": math.log1p(own_count)}
    return [values[name] for name in FEATURES]


class KnowledgePipeline:
    """Runs the pipeline against a snapshot with one domain's models.

    Args:
        snapshot: the graph as the pipeline reads it (:class:`GraphSnapshot`).
        models: :class:`PipelineModels` of the snapshot's domain.
        options: :class:`PipelineOptions`.
        llm: the configured LLM, or None (offline mode).
    """

    def __init__(self, snapshot: GraphSnapshot, models: PipelineModels, options: PipelineOptions | None = None,
                 llm: LLM | None = None):
        self.snapshot = snapshot
        self.models = models
        self.options = options = options or PipelineOptions()
        self.llm = llm if options.use_llm else None
        retriever = models.utility.retriever if models.utility is not None else None
        self.knowledge = KnowledgeBuilder(snapshot, models.encoder, retriever=retriever, utility=models.utility,
                                          llm=self.llm, use_utility=options.use_utility)
        if options.relations is not None:
            unknown = [r for r in options.relations if r not in snapshot.relations]
            if unknown:
                raise InvalidInputError("options.relations", f"not in the relation pool: {unknown}")
        self.relations = RelationSelector(snapshot, models.encoder, classifier=models.classifier, llm=self.llm,
                                          restrict=options.relations, top_k=options.relation_top_k,
                                          threshold=options.relation_threshold, max_keep=options.max_relations,
                                          keep_own=options.keep_own_relations)
        self.generators = [g for name in options.generators or GENERATORS
                           if (g := build_generator(name, snapshot=snapshot, models=models, options=options,
                                                    llm=self.llm)) is not None]

    # --- S ---------------------------------------------------------------------------------------
    def source(self, entity: SourceEntity | str) -> EntityInfo:
        """S as a graph entity: the existing node with that name (and a compatible type), or a new one."""
        entity = SourceEntity(name=entity) if isinstance(entity, str) else entity
        if entity.id is not None:
            found = self.snapshot.by_id(entity.id)
            if found is None:
                raise InvalidInputError("id", f"{entity.id!r} is not a node of domain {self.snapshot.domain!r}")
            return EntityInfo(found.id, found.name, entity.description or found.description, found.type or entity.type)
        for found in self.snapshot.find(entity.name):
            if entity.label and schema.label_for_key(found.id) != entity.label:
                continue
            if not entity.type or not found.type or schema.normalize_name(found.type) == schema.normalize_name(entity.type):
                return EntityInfo(found.id, found.name, entity.description or found.description, found.type or entity.type)
        return EntityInfo(f"kg:{schema.key_part(entity.name)}", entity.name, entity.description, entity.type)

    # --- candidates -------------------------------------------------------------------------------
    def candidates(self, entity: SourceEntity | str | EntityInfo) -> EntityRun:
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = now - clock
            clock = now

        info = entity if isinstance(entity, EntityInfo) else self.source(entity)
        knowledge = self.knowledge.build(info)
        lap("knowledge")
        selection = self.relations.select(knowledge, use_llm=self.llm is not None)
        errors = list(knowledge.notes) + ([selection.note] if selection.note else [])
        lap("relations")
        proposals = []
        k = self.options.targets_per_generator
        for generator in self.generators:
            # A generator that can batch (the LLM: one entity's calls run concurrently) gets every relation at once.
            if hasattr(generator, "propose_many"):
                proposals.extend(generator.propose_many(knowledge, selection.kept, k))
            else:
                proposals.extend(p for relation in selection.kept for p in generator.propose(knowledge, relation, k))
        for generator in self.generators:
            errors.extend(getattr(generator, "errors", []))
            if hasattr(generator, "errors"):
                generator.errors.clear()
        voted = vote(proposals)
        lap("generate")
        logits = self._rerank(info, voted)
        lap("rerank")
        by_relation = {c.relation: c for c in selection.kept}
        threshold_logit = self._reranker_threshold_logit()
        own = Counter(e.relation for e in self.snapshot.out_edges(info.id)) if knowledge.in_graph else Counter()
        candidates = []
        for v, logit in zip(voted, logits, strict=True):
            relation = by_relation[v.relation]
            sources = sorted({f"{p.generator}:{p.model}" for p in v.proposals})
            if self.models.reranker is not None and self.options.use_reranker:
                sources.append(f"reranker:reranker-{self.snapshot.domain}")
            candidates.append(ScoredTriple(
                head=info.id, head_name=info.name, relation=v.relation, target_id=v.target_id,
                target_name=v.target_name, target_type=v.target_type, generators=v.generators, sources=sources,
                voters=v.voters, evidence=v.evidence, provenance=v.provenance(),
                features=features_of(v, relation.retrieval_score, relation.probability or 0.0, logit,
                                     range_count=self.snapshot.relation_range(v.relation).get(v.target_id, 0)
                                     if v.target_id else 0,
                                     reranker_threshold_logit=threshold_logit, own_count=own[v.relation]),
                reranker_probability=1.0 / (1.0 + math.exp(-logit)) if self.models.reranker is not None else None))
        return EntityRun(entity=info, knowledge=knowledge, relations=selection, proposals=len(proposals),
                         candidates=candidates, timings=timings, errors=errors)

    def _reranker_threshold_logit(self) -> float:
        """The reranker's decision threshold as a logit (0 when it has none or is off)."""
        threshold = getattr(self.models.reranker, "threshold", None) if self.options.use_reranker else None
        if threshold is None:
            return 0.0
        threshold = min(max(float(threshold), 1e-6), 1 - 1e-6)
        return math.log(threshold / (1 - threshold))

    def _rerank(self, info: EntityInfo, voted: Sequence[Voted]) -> list[float]:
        if self.models.reranker is None or not self.options.use_reranker or not voted:
            return [0.0] * len(voted)
        entities = self.snapshot.entities
        tails = [entities[v.target_id].text() if v.target_id in entities else v.target_name for v in voted]
        relations = [self.snapshot.relations.get(v.relation, v.relation) for v in voted]
        return self.models.reranker.score_texts([info.text()] * len(voted), relations, tails).tolist()

    def run(self, entity: SourceEntity | str | EntityInfo) -> EntityRun:
        """Candidates, then the keep policy with the calibrated confidence."""
        confidence = self.models.confidence if self.options.use_reranker else self.models.confidence_no_reranker
        return select(self.candidates(entity), self.options, confidence,
                      default_target_precision=self.models.target_precision)

    # --- write -------------------------------------------------------------------------------------
    def write(self, store: GraphStore, runs: Sequence[EntityRun], *, job_id: str | None = None,
              resolver: EntityResolver | None = None, update_snapshot: bool = True) -> WriteReport:
        """Resolve and write the kept triples of ``runs`` (idempotent: MERGE on deterministic ids).

        ``update_snapshot`` adds what was written to the snapshot, so later entities see it. A
        job that must be replayable after a crash passes False (and reads its snapshot with
        ``exclude_job``), so that every entity's result depends only on the graph before the job.
        """
        index = self.snapshot.entity_index(self.models.encoder)
        resolver = resolver or EntityResolver(store, domain=self.snapshot.domain, encoder=self.models.encoder,
                                              name_index=EntityIndexNeighbours(index) if index is not None else None)
        report = WriteReport()
        if is_product_domain(self.snapshot.domain):
            runs, report.not_in_catalogue = catalogue_targets_only(runs)
        sources_needed = [r.entity for r in runs if r.kept and r.entity.id not in self.snapshot.entities]
        names = [Candidate(name=c.target_name, type=c.target_type) for r in runs for c in r.kept if c.target_id is None]
        resolution = resolver.run([Candidate(name=e.name, type=e.type) for e in sources_needed] + names,
                                  source="pipeline", job_id=job_id) if (sources_needed or names) else None
        source_ids: dict[str, str] = {}
        if resolution is not None:
            report.new_nodes, report.merged = resolution.created, resolution.merged
            for e in sources_needed:
                source_ids[e.id] = resolution.node_id(e.name, e.type)
            described = [NodeWrite(label=schema.ENTITY, id=source_ids[e.id], description=e.description,
                                   props={"type": e.type} if e.type else {}, job_id=job_id)
                         for e in sources_needed if e.description or e.type]
            if described:
                store.upsert_nodes(described)
        writes, edges = [], []
        for run in runs:
            head = source_ids.get(run.entity.id, run.entity.id)
            for c in run.kept:
                tail = c.target_id or (resolution.node_id(c.target_name, c.target_type)
                                       if resolution is not None else None)
                if tail is None or tail == head:
                    continue
                writes.append(TripleWrite(head=head, relation=c.relation, tail=tail, confidence=float(c.confidence or 0.0),
                                          sources=tuple(c.sources), evidence=tuple(c.evidence), job_id=job_id,
                                          props=c.provenance, head_label=schema.label_for_key(head),
                                          tail_label=schema.label_for_key(tail)))
                edges.append(Edge(head, c.relation, tail))
        if writes:
            report.triples_written = store.upsert_triples(writes)
        if index is not None and resolution is not None:
            # Nodes this write resolved or created join the domain's embedding index (it skips known ids).
            described = {source_ids[e.id]: EntityInfo(source_ids[e.id], e.name, e.description, e.type).text()
                         for e in sources_needed}
            for c in (c for r in runs for c in r.kept if c.target_id is None):
                node = resolution.node_id(c.target_name, c.target_type)
                if node is not None and node.startswith(f"{self.snapshot.domain}:"):
                    described.setdefault(node, c.target_name)
            if described:
                index.add(list(described), list(described.values()))
        if update_snapshot:
            for run in runs:
                if run.entity.id in source_ids:
                    e = run.entity
                    self.snapshot.add_entity(EntityInfo(source_ids[e.id], e.name, e.description, e.type))
            self.snapshot.add_edges(edges)
        report.kept = len(writes)
        return report


def catalogue_targets_only(runs: Sequence[EntityRun]) -> tuple[list[EntityRun], int]:
    """A product domain's targets are catalogue nodes (items, brands, categories): kept candidates
    whose name resolved to no node are dropped, never written as new nodes. Returns the runs
    without them and how many were dropped (the write report's ``not_in_catalogue``)."""
    dropped = sum(1 for r in runs for c in r.candidates if c.kept and c.target_id is None)
    kept = [r.model_copy(update={"candidates": [c for c in r.candidates if c.target_id is not None or not c.kept]})
            for r in runs]
    return kept, dropped


#: The options that decide which candidates a job generates. ``kgforge train confidence`` records
#: the values it fitted with (``candidate_policy`` in the model's config): the floor for a target
#: precision was read off those candidates, so a job whose values differ says so in its notes
#: (:func:`policy_note`) rather than claim the target. Not a refusal: the features mean the same,
#: only the calibration may shift.
CANDIDATE_POLICY = ("keep_own_relations", "relation_top_k", "max_relations", "relation_threshold",
                    "targets_per_generator")


def candidate_policy(options: PipelineOptions) -> dict[str, Any]:
    """The values of :data:`CANDIDATE_POLICY` in ``options``."""
    return {name: getattr(options, name) for name in CANDIDATE_POLICY}


#: Options only the offline relation filter reads (the LLM filter chooses relations itself).
OFFLINE_ONLY = ("keep_own_relations", "relation_threshold")


def policy_note(confidence: ConfidenceModel, options: PipelineOptions) -> str | None:
    """A note when ``confidence`` was fitted on candidates of another policy than ``options``
    (or, offline, records none: fitted before 2026-12-03, when the offline relation filter was the
    classifier alone), naming the command that refits it; None when they agree."""
    command = train_command(confidence.meta.get("domain"), confidence.mode)
    fitted = confidence.meta.get("candidate_policy")
    ignored = OFFLINE_ONLY if confidence.mode == "llm" else ()
    if not isinstance(fitted, dict):
        if confidence.mode == "llm":
            return None
        return (f"the confidence model records no candidate policy (fitted before 2026-12-03, when the offline "
                f"relation filter kept the classifier's relations only), so its floor may not give the target "
                f"precision on this job's candidates; refit it with `{command}`")
    now = candidate_policy(options)
    differs = [name for name in CANDIDATE_POLICY
               if name in fitted and name not in ignored and fitted[name] != now[name]]
    if not differs:
        return None
    return ("the confidence model was fitted with " + ", ".join(f"{n}={fitted[n]!r}" for n in differs)
            + " and this job runs with " + ", ".join(f"{n}={now[n]!r}" for n in differs)
            + f", so its floor may not give the target precision here; refit it with `{command}` "
              "and these options to calibrate them")


class WriteReport(BaseModel):
    kept: int = 0
    triples_written: int = 0
    new_nodes: int = 0
    merged: int = 0
    not_in_catalogue: int = 0  # product domains: kept names that matched no catalogue node (not written)


def select(run: EntityRun, options: PipelineOptions, confidence: ConfidenceModel | None, *,
           default_target_precision: float = 0.7) -> EntityRun:
    """Apply the keep policy to ``run`` in place and return it.

    Default (precise) policy: keep the candidates whose calibrated confidence clears the floor
    (``options.min_confidence``, or the floor that reached ``options.target_precision``, default
    ``default_target_precision``, on the calibration candidates: :meth:`ConfidenceModel.floor_for`),
    then the best ``max_per_entity``. Nothing clearing the floor is a correct answer: the run's
    notes say so. ``keep_fraction`` (the top share by confidence) and ``rerank_threshold`` (the
    reranker's probability alone) are the comparison policies of the evaluation.
    """
    candidates = run.candidates
    if not candidates:
        return run
    matrix = np.asarray([c.features for c in candidates], float)
    probabilities = confidence.predict(matrix) if confidence is not None else None
    if probabilities is not None:
        for c, p in zip(candidates, probabilities, strict=True):
            c.confidence = float(p)
    use_reranker = options.use_reranker and candidates[0].reranker_probability is not None
    if probabilities is not None:
        rank_by = probabilities
    elif use_reranker:
        rank_by = matrix[:, FEATURES.index("reranker_logit")]
    else:
        rank_by = matrix[:, FEATURES.index("votes")]
    order = np.argsort(-rank_by, kind="stable")
    chosen = np.zeros(len(candidates), bool)
    if use_reranker and options.rerank_threshold is not None:
        chosen = np.asarray([c.reranker_probability >= options.rerank_threshold for c in candidates])
    elif options.keep_fraction is not None or probabilities is None:
        budget = max(1, math.ceil((options.keep_fraction or 0.25) * len(candidates)))
        chosen[order[:budget]] = True
    else:
        if options.min_confidence is not None:
            floor = options.min_confidence
        else:
            assert confidence is not None
            target = options.target_precision or default_target_precision
            floor = confidence.floor_for(target)
            if (note := policy_note(confidence, options)) is not None:
                run.errors.append(note)
        chosen = probabilities >= floor
        if not chosen.any():
            reason = ("the explicit floor" if options.min_confidence is not None
                      else f"the floor for precision {options.target_precision or default_target_precision:.2f}")
            run.errors.append(f"no candidate cleared {reason} (confidence {floor:.3f}); the best of "
                              f"{len(candidates)} had {float(probabilities.max()):.3f}, so nothing is written")
    if options.min_confidence is not None and probabilities is not None:
        chosen &= probabilities >= options.min_confidence
    kept = [i for i in order if chosen[i]][: options.max_per_entity]
    keep = set(kept)
    for i, c in enumerate(candidates):
        c.kept = i in keep
    return run


__all__ = ["CANDIDATE_POLICY", "EntityRun", "KnowledgePipeline", "NO_RERANKER", "PipelineModels", "PipelineOptions",
           "ScoredTriple", "SourceEntity", "WriteReport", "candidate_policy", "catalogue_targets_only", "features_of",
           "policy_note", "select"]
