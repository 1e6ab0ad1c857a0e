"""GraphSnapshot: the read side of the knowledge pipeline.

The pipeline reads a lot around one source entity S (its edges, the relation pool, which relations
entities like S have, which entities a relation points to, entities by name) and writes little.

* :meth:`GraphSnapshot.from_store` returns a :class:`StoreSnapshot`: a lazy view of the live graph
  that reads, over Bolt, only the bounded neighbourhoods a job touches (S's node and edges, the
  similar entities' edges, entities looked up by id or normalised name, batched and cached for the
  job, and one relation's tails when a generator asks for them), all scoped to the job's domain.
  Its cost does not grow with other domains' data: with WN18RR, FB15k-237 and two Amazon domains
  imported beside UMLS, a UMLS job reads what it read with UMLS alone
  (``benchmarks/bench_job_scaling.py``). Entities like S come from the domain's persistent
  embedding index (:class:`~kg_builder.retrieval.entity_index.EntityIndex`), not from embedding
  every entity per job.
* :meth:`GraphSnapshot.read_whole` reads a domain's entities and edges into memory at once (the
  former ``from_store``; kept as the reference the lazy view is tested against, and as the
  benchmark's baseline).
* :meth:`GraphSnapshot.from_dataset` builds the in-memory view from a dataset's chosen splits,
  without a database: ``eval generation`` uses it to hold out the test triples from the graph the
  pipeline sees.

Ids are graph keys (``umls:virus``); ``domain`` is the dataset whose trained models apply (the
prefix of those keys, and the ``domain`` property the import writes on every entity);
:meth:`native` turns a key back into the dataset's own id, which the trained models use. An entity
belongs to a domain when its ``domain`` property names it or when it has none (a node a job created).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kg_builder.datasets import Dataset
from kg_builder.datasets.text import name_and_description
from kg_builder.errors import InvalidInputError
from kg_builder.graphdb import GraphStore
from kg_builder.graphdb import schema

if TYPE_CHECKING:  # pragma: no cover
    from kg_builder.models.encoder import TextEncoder
    from kg_builder.retrieval.entity_index import EntityIndex
    from kg_builder.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EntityInfo:
    """One entity node: graph key, name, description and type (both optional)."""

    id: str
    name: str
    description: str | None = None
    type: str | None = None

    def text(self, description_chars: int = 300) -> str:
        """``"name: description"`` (cut at a word boundary), the text every model reads."""
        return name_and_description(self.name, self.description, description_chars)


@dataclass(frozen=True, slots=True)
class Edge:
    """``head -[relation]-> tail`` with the relation's original name (``"isa"``, not ``ISA``)."""

    head: str
    relation: str
    tail: str


@dataclass
class GraphSnapshot:
    """Entities, relation pool and entity-entity edges of one domain, indexed for the pipeline."""

    domain: str
    entities: dict[str, EntityInfo]
    relations: dict[str, str]  # name -> description (or the name when it has none)
    edges: list[Edge]
    _out: dict[str, list[Edge]] = field(default_factory=dict, repr=False)
    _in: dict[str, list[Edge]] = field(default_factory=dict, repr=False)
    _by_norm: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _known: set[tuple[str, str, str]] = field(default_factory=set, repr=False)
    _range: dict[str, Counter[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        out: dict[str, list[Edge]] = defaultdict(list)
        into: dict[str, list[Edge]] = defaultdict(list)
        ranges: dict[str, Counter[str]] = defaultdict(Counter)
        for edge in self.edges:
            out[edge.head].append(edge)
            into[edge.tail].append(edge)
            ranges[edge.relation][edge.tail] += 1
            self._known.add((edge.head, edge.relation, edge.tail))
        self._out, self._in, self._range = dict(out), dict(into), dict(ranges)
        by_norm: dict[str, list[str]] = defaultdict(list)
        for entity in self.entities.values():
            by_norm[schema.normalize_name(entity.name)].append(entity.id)
        self._by_norm = dict(by_norm)

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def from_dataset(cls, dataset: Dataset, splits: Sequence[str] = ("train",), *,
                     exclude: Iterable[tuple[str, str, str]] = ()) -> GraphSnapshot:
        """The graph ``kgforge import`` would write for ``dataset``, restricted to ``splits``, less
        the ``exclude`` triples (dataset ids: ``(head, relation, tail)``)."""
        missing = [s for s in splits if s not in dataset.triples]
        if missing:
            raise InvalidInputError("splits", f"{dataset.name} has no split(s) {missing}; it has "
                                    f"{sorted(dataset.triples)}")
        def key(native: str) -> str:
            return schema.graph_key(dataset.name, native)

        entities = {key(e.id): EntityInfo(key(e.id), e.name, e.description) for e in dataset.entities}
        relations = {r.id: r.text for r in dataset.relations}
        skip = set(exclude)
        edges = [Edge(key(t.head), t.relation, key(t.tail)) for s in splits for t in dataset.triples[s]
                 if (t.head, t.relation, t.tail) not in skip]
        return cls(dataset.name, entities, relations, edges)

    @classmethod
    def from_store(cls, store: GraphStore, domain: str, *, exclude_job: str | None = None,
                   settings: Settings | None = None) -> GraphSnapshot:
        """A lazy, domain-scoped view of the live graph (:class:`StoreSnapshot`); reads nothing else yet.

        ``exclude_job`` leaves out the nodes and edges that job created: a job that is run again
        after a crash then sees the graph as it was before its first attempt, and so makes exactly
        the same decisions (its replayed writes MERGE onto what the first attempt wrote).
        ``settings`` locates the domain's persistent entity index (``KGFORGE_HOME/index/<domain>``);
        without it the index is built in memory from the domain's entities, once per snapshot.
        """
        return StoreSnapshot(store, domain, exclude_job=exclude_job, settings=settings)

    @classmethod
    def read_whole(cls, store: GraphStore, domain: str, *, exclude_job: str | None = None,
                   scoped: bool = True) -> GraphSnapshot:
        """Read every entity and every entity-entity edge into memory (the former ``from_store``).

        With ``scoped`` only ``domain``'s entities (and those without a domain) and its relation
        pool; without, the whole graph, as jobs did before the lazy view (the scaling baseline).
        Streams every edge of the graph over Bolt: use :meth:`from_store` in jobs.
        """
        entities = {row["id"]: EntityInfo(row["id"], row["name"], row.get("description"), row.get("type"))
                    for row in store.entity_profiles()
                    if (exclude_job is None or row.get("job_id") != exclude_job)
                    and (not scoped or row.get("domain") in (None, domain))}
        pool = store.domain_relation_pool(domain) if scoped else []
        relations = {info.name: info.description or info.name for info in (pool or store.relation_pool())}
        edges = [Edge(t.head, t.relation, t.tail) for t in store.export_triples()
                 if t.head in entities and t.tail in entities and t.relation in relations
                 and (exclude_job is None or t.job_id != exclude_job)]
        return cls(domain, entities, relations, edges)

    # --- reads ---------------------------------------------------------------------------------
    def native(self, node_id: str) -> str | None:
        """The dataset's own id of a key of this domain (``umls:virus`` -> ``virus``; a product
        domain's global keys such as ``amazon:B0001`` are their own ids), else None."""
        return schema.native_key(self.domain, node_id)

    def by_id(self, node_id: str) -> EntityInfo | None:
        """The entity a job names by id: a graph key (``amazon:B00000JBLU``), or the dataset's own id
        (``virus``, ``category:5``), tried as ``<domain>:<id>``; None when neither is a node here."""
        for key in (node_id, f"{self.domain}:{node_id}"):
            if key in self.entities:
                return self.entities[key]
        return None

    def find(self, name: str) -> list[EntityInfo]:
        """Entities whose normalised name equals ``name``'s."""
        return [self.entities[i] for i in self._by_norm.get(schema.normalize_name(name), ())]

    def out_edges(self, node_id: str) -> list[Edge]:
        return self._out.get(node_id, [])

    def in_edges(self, node_id: str) -> list[Edge]:
        return self._in.get(node_id, [])

    def has(self, head: str, relation: str, tail: str) -> bool:
        return (head, relation, tail) in self._known

    def known_tails(self, head: str, relation: str) -> set[str]:
        return {e.tail for e in self.out_edges(head) if e.relation == relation}

    def relation_profile(self, node_id: str) -> set[str]:
        """Relations the entity has as head."""
        return {e.relation for e in self.out_edges(node_id)}

    def relation_frequency(self, node_ids: Iterable[str]) -> Counter[str]:
        """How many of ``node_ids`` have each relation as head."""
        counts: Counter[str] = Counter()
        for node_id in node_ids:
            counts.update(self.relation_profile(node_id))
        return counts

    def relation_range(self, relation: str) -> Counter[str]:
        """Tails of ``relation`` with their counts (what the relation points to)."""
        return self._range.get(relation, Counter())

    def add_edges(self, edges: Iterable[Edge]) -> None:
        """Record edges the pipeline has just written, so later entities of the job see them."""
        for edge in edges:
            if (edge.head, edge.relation, edge.tail) in self._known:
                continue
            self.edges.append(edge)
            self._known.add((edge.head, edge.relation, edge.tail))
            self._out.setdefault(edge.head, []).append(edge)
            self._in.setdefault(edge.tail, []).append(edge)
            self._range.setdefault(edge.relation, Counter())[edge.tail] += 1

    def add_entity(self, entity: EntityInfo) -> None:
        if entity.id not in self.entities:
            self.entities[entity.id] = entity
            self._by_norm.setdefault(schema.normalize_name(entity.name), []).append(entity.id)

    # --- hooks for the lazy view (no-ops in memory) ---------------------------------------------
    def prefetch(self, node_ids: Iterable[str]) -> None:
        """Look these entities up in one round trip (before a loop of ``id in snapshot.entities``)."""

    def entity_index(self, encoder: TextEncoder) -> EntityIndex | None:
        """The domain's embedding index for "entities like S", or None: rank :attr:`entities` in memory."""
        return None

    def index_entities(self, entities: Iterable[EntityInfo]) -> int:
        """Add new entities (just written) to the domain's embedding index; returns rows added."""
        return 0


class _StoreEntities(Mapping[str, EntityInfo]):
    """``snapshot.entities`` of a :class:`StoreSnapshot`: membership and lookups by id, batched
    (:meth:`StoreSnapshot.prefetch`) and cached for the job, absent ids included."""

    def __init__(self, snapshot: StoreSnapshot):
        self._snapshot = snapshot
        self.cache: dict[str, EntityInfo | None] = {}
        self.all_loaded = False

    def __getitem__(self, node_id: str) -> EntityInfo:
        if node_id not in self.cache:
            self._snapshot.prefetch([node_id])
        found = self.cache.get(node_id)
        if found is None:
            raise KeyError(node_id)
        return found

    def __contains__(self, node_id: object) -> bool:
        if not isinstance(node_id, str) or not node_id:
            return False
        try:
            self[node_id]
        except KeyError:
            return False
        return True

    def _load_all(self) -> None:
        if not self.all_loaded:
            snapshot = self._snapshot
            log.info("reading every entity of %r (a whole-domain read: iterate snapshot.entities only when "
                     "the whole domain is needed)", snapshot.domain)
            for row in snapshot.store.domain_entities(snapshot.domain, exclude_job=snapshot.exclude_job,
                                                      labels=snapshot.labels):
                snapshot._remember(row)
            snapshot.reads["domain_entities"] += 1
            self.all_loaded = True

    def __iter__(self) -> Iterator[str]:
        """Every entity of the domain (one whole-domain read, once per snapshot), then those looked
        up by id or added that have no domain (a job's nodes)."""
        self._load_all()
        return iter([node_id for node_id, info in self.cache.items() if info is not None])

    def __len__(self) -> int:
        self._load_all()
        return sum(info is not None for info in self.cache.values())


class StoreSnapshot(GraphSnapshot):
    """The graph as one job of ``domain`` sees it, read lazily over Bolt in bounded pieces.

    Answers what :class:`GraphSnapshot` answers, from these reads (each batched, each cached for
    the snapshot's life, each scoped to the domain and blind to ``exclude_job``'s nodes and edges):

    ==========================  ===================================================================
    ``relations``               the domain's relation pool (``Relation`` nodes its import
                                registered), read at construction
    ``entities[id]``, ``in``    entities by id (:meth:`prefetch` batches a list)
    ``find(name)``              entities by normalised name (the ``name_norm`` index)
    ``out_edges``/``in_edges``  a node's edges to named entities of the domain (with their profiles,
                                so names along edges cost nothing more); ``has``, ``known_tails``,
                                ``relation_profile`` and ``relation_frequency`` (batched) use them
    ``relation_range(r)``       tails of ``r`` with counts, from the domain's heads, the
                                ``range_limit`` most frequent
    ``entity_index()``          the domain's persistent :class:`EntityIndex`
    ==========================  ===================================================================

    ``edges`` holds only what :meth:`add_edges` recorded. ``reads`` counts the statements run.
    """

    def __init__(self, store: GraphStore, domain: str, *, exclude_job: str | None = None,
                 settings: Settings | None = None, edge_limit: int = 10_000, range_limit: int = 10_000):
        self.store = store
        self.domain = domain
        self.exclude_job = exclude_job
        self.settings = settings
        self.edge_limit = edge_limit
        self.range_limit = range_limit
        self.reads: Counter[str] = Counter()
        from kg_builder.products.domain import domain_labels

        self.labels = domain_labels(domain)
        pool = store.domain_relation_pool(domain)
        self.reads["relation_pool"] += 1
        if not pool:
            log.warning("no relation was registered by dataset %r; using the whole relation pool", domain)
            pool = store.relation_pool()
        self.relations = {info.name: info.description or info.name for info in pool}
        self.entities = _StoreEntities(self)  # type: ignore[assignment]
        self.edges = []
        self._out, self._in = {}, {}
        self._by_norm = {}
        self._added_by_norm: dict[str, list[str]] = {}
        self._known = set()
        self._range = {}
        self._index: EntityIndex | None = None

    # --- entities --------------------------------------------------------------------------------
    def _remember(self, row: dict) -> EntityInfo:
        info = EntityInfo(row["id"], row["name"], row.get("description"), row.get("type"))
        cache = self.entities.cache  # type: ignore[attr-defined]
        if cache.get(info.id) is None:
            cache[info.id] = info
        return cache[info.id]

    def prefetch(self, node_ids: Iterable[str]) -> None:
        cache = self.entities.cache  # type: ignore[attr-defined]
        missing = [i for i in dict.fromkeys(node_ids) if isinstance(i, str) and i and i not in cache]
        if not missing:
            return
        rows = self.store.domain_entities_by_ids(self.domain, missing, exclude_job=self.exclude_job,
                                                 labels=self.labels)
        self.reads["entities_by_ids"] += 1
        for row in rows:
            self._remember(row)
        for node_id in missing:
            cache.setdefault(node_id, None)

    def find(self, name: str) -> list[EntityInfo]:
        norm = schema.normalize_name(name)
        if not norm:
            return []
        if norm not in self._by_norm:
            rows = self.store.domain_entities_by_names(self.domain, [name], exclude_job=self.exclude_job,
                                                       labels=self.labels)
            self.reads["entities_by_names"] += 1
            self._by_norm[norm] = [self._remember(row).id for row in rows]
        ids = self._by_norm[norm] + [i for i in self._added_by_norm.get(norm, ()) if i not in self._by_norm[norm]]
        return [self.entities[i] for i in ids]

    def add_entity(self, entity: EntityInfo) -> None:
        cache = self.entities.cache  # type: ignore[attr-defined]
        if cache.get(entity.id) is None:
            cache[entity.id] = entity
            self._added_by_norm.setdefault(schema.normalize_name(entity.name), []).append(entity.id)

    # --- edges -----------------------------------------------------------------------------------
    def _load_edges(self, node_ids: Iterable[str], direction: str) -> None:
        loaded = self._out if direction == "out" else self._in
        wanted = [i for i in dict.fromkeys(node_ids) if i not in loaded]
        if not wanted:
            return
        self.prefetch(wanted)
        visible = [i for i in wanted if i in self.entities]
        found: dict[str, list[Edge]] = {i: [] for i in wanted}
        if visible:
            rows = self.store.domain_edges(self.domain, visible, direction=direction, exclude_job=self.exclude_job,
                                           limit=self.edge_limit, labels=self.labels)
            self.reads[f"{direction}_edges"] += 1
            if len(rows) >= self.edge_limit:
                log.warning("%s edges of %d node(s) cut at %d rows", direction, len(visible), self.edge_limit)
            anchor = "head" if direction == "out" else "tail"
            for row in rows:
                if row["relation"] not in self.relations:
                    continue
                other = self._remember(row).id
                edge = (Edge(row["head"], row["relation"], other) if direction == "out"
                        else Edge(other, row["relation"], row["tail"]))
                found[row[anchor]].append(edge)
        for edge in self.edges:  # this job's own additions (add_edges) not in the database's answer
            key = edge.head if direction == "out" else edge.tail
            if key in found and edge not in found[key]:
                found[key].append(edge)
        loaded.update(found)

    def out_edges(self, node_id: str) -> list[Edge]:
        self._load_edges([node_id], "out")
        return self._out[node_id]

    def in_edges(self, node_id: str) -> list[Edge]:
        self._load_edges([node_id], "in")
        return self._in[node_id]

    def has(self, head: str, relation: str, tail: str) -> bool:
        return any(e.relation == relation and e.tail == tail for e in self.out_edges(head))

    def relation_frequency(self, node_ids: Iterable[str]) -> Counter[str]:
        node_ids = list(node_ids)
        self._load_edges(node_ids, "out")  # one batched read for all of them
        return super().relation_frequency(node_ids)

    def relation_range(self, relation: str) -> Counter[str]:
        if relation not in self._range:
            if relation not in self.relations:
                return Counter()
            rows = self.store.domain_relation_range(self.domain, relation, exclude_job=self.exclude_job,
                                                    limit=self.range_limit, labels=self.labels)
            self.reads["relation_range"] += 1
            self._range[relation] = Counter({self._remember({**row, "id": row["tail"]}).id: int(row["count"])
                                             for row in rows})
        return self._range[relation]

    def add_edges(self, edges: Iterable[Edge]) -> None:
        """Record edges the pipeline has just written (see :meth:`GraphSnapshot.add_edges`). An edge
        is new unless the head's edges, already read, hold it."""
        for edge in edges:
            if edge in self.edges or (edge.head in self._out and edge in self._out[edge.head]):
                continue
            self.edges.append(edge)
            if edge.head in self._out:
                self._out[edge.head].append(edge)
            if edge.tail in self._in:
                self._in[edge.tail].append(edge)
            if edge.relation in self._range:
                self._range[edge.relation][edge.tail] += 1

    # --- entity embedding index ------------------------------------------------------------------
    def entity_index(self, encoder: TextEncoder) -> EntityIndex:
        """The domain's :class:`EntityIndex` (persistent under ``settings.home``), built on first use."""
        if self._index is None:
            from kg_builder.retrieval.entity_index import EntityIndex

            if self.settings is not None:
                index = EntityIndex.open(self.settings, self.domain, encoder=encoder)
            else:
                log.warning("no settings given to GraphSnapshot.from_store: embedding the %r entities in memory "
                            "for this snapshot (pass settings= to use the persistent index)", self.domain)
                index = EntityIndex.in_memory(self.domain, encoder)
            index.ensure_built(self.store)
            self._index = index
        return self._index

    def index_entities(self, entities: Iterable[EntityInfo]) -> int:
        entities = list(entities)
        if not entities or self.settings is None and self._index is None:
            return 0
        from kg_builder.retrieval.entity_index import EntityIndex

        index = self._index or EntityIndex.open(self.settings, self.domain)  # type: ignore[arg-type]
        if index.encoder is None:
            log.warning("entity index %r has no encoder yet; %d new entities not indexed", self.domain, len(entities))
            return 0
        return index.add([e.id for e in entities], [e.text() for e in entities])


__all__ = ["Edge", "EntityInfo", "GraphSnapshot", "StoreSnapshot"]
