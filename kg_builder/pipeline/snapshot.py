"""GraphSnapshot: the read side of the knowledge pipeline, in memory.

The pipeline reads a lot around one source entity S (its edges, the relation pool, which relations
entities like S have, which entities a relation points to, every entity's name for mention
matching) and writes little. Reading all of that through Bolt statement by statement would cost
one round trip per question; a snapshot answers from memory and is built once per job:

* :meth:`GraphSnapshot.from_store` reads the live graph (entities, relation pool, every edge
  between entities) over Bolt. On UMLS this takes well under a second; on WN18RR (41k entities,
  93k edges) a few seconds.
* :meth:`GraphSnapshot.from_dataset` builds the same view from a dataset's chosen splits, without
  a database: ``eval generation`` uses it to hold out the test triples from the graph the pipeline
  sees.

Ids are graph keys (``umls:virus``); ``domain`` is the dataset whose trained models apply (the
prefix of those keys); :meth:`native` turns a key back into the dataset's own id, which the
trained models use.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kg_builder.datasets import Dataset
from kg_builder.datasets.text import name_and_description
from kg_builder.errors import InvalidInputError
from kg_builder.store import GraphStore
from kg_builder.store import schema


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
    def from_dataset(cls, dataset: Dataset, splits: Sequence[str] = ("train",)) -> GraphSnapshot:
        """The graph ``kgforge import`` would write for ``dataset``, restricted to ``splits``."""
        missing = [s for s in splits if s not in dataset.triples]
        if missing:
            raise InvalidInputError("splits", f"{dataset.name} has no split(s) {missing}; it has "
                                    f"{sorted(dataset.triples)}")
        key = f"{dataset.name}:{{}}".format
        entities = {key(e.id): EntityInfo(key(e.id), e.name, e.description) for e in dataset.entities}
        relations = {r.id: r.text for r in dataset.relations}
        edges = [Edge(key(t.head), t.relation, key(t.tail)) for s in splits for t in dataset.triples[s]]
        return cls(dataset.name, entities, relations, edges)

    @classmethod
    def from_store(cls, store: GraphStore, domain: str, *, exclude_job: str | None = None) -> GraphSnapshot:
        """Read the live graph: ``Entity`` nodes, the relation pool, and edges between entities.

        ``exclude_job`` leaves out the nodes and edges that job created: a job that is run again
        after a crash then sees the graph as it was before its first attempt, and so makes exactly
        the same decisions (its replayed writes MERGE onto what the first attempt wrote).
        """
        entities = {row["id"]: EntityInfo(row["id"], row["name"], row.get("description"), row.get("type"))
                    for row in store.entity_profiles()
                    if exclude_job is None or row.get("job_id") != exclude_job}
        relations = {info.name: info.description or info.name for info in store.relation_pool()}
        edges = [Edge(t.head, t.relation, t.tail) for t in store.export_triples()
                 if t.head in entities and t.tail in entities and t.relation in relations
                 and (exclude_job is None or t.job_id != exclude_job)]
        return cls(domain, entities, relations, edges)

    # --- reads ---------------------------------------------------------------------------------
    def native(self, node_id: str) -> str | None:
        """The dataset's own id of a key of this domain (``umls:virus`` -> ``virus``), else None."""
        prefix = f"{self.domain}:"
        return node_id[len(prefix):] if node_id.startswith(prefix) else None

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


__all__ = ["Edge", "EntityInfo", "GraphSnapshot"]
