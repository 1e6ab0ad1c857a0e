"""GraphStore: the only way kgforge reads and writes the graph (official ``neo4j`` driver, Bolt).

Every write is a managed transaction (``execute_write``), so the driver retries transient errors
(ArcadeDB reports concurrent page modifications as ``TransientError``) and a failed batch leaves
nothing behind. Writes are ``UNWIND $rows`` batches grouped by label or by (type, head label, tail
label), because labels and types are part of the statement text and values never are.

A batch's transaction runs two statements: one creates the rows whose node or edge is missing
(``create_missing_*``, an ``OPTIONAL MATCH ... WHERE x IS NULL CREATE``) and returns their row
numbers, one updates the rest (``upsert_*``, provenance unions). ArcadeDB 26.10 evaluates a MERGE
with ``ON CREATE``/``SET`` expressions per row at a much higher cost than a plain CREATE, and a
new import (or a job's new triples) is almost all creates. Rows repeating a key are merged in
Python first, so one statement never creates a key twice. Two writers creating the same edge at
once both modify the head's edge list; ArcadeDB fails one with a concurrent-modification error,
the driver retries it, and the retry finds the edge (``test_racing_writers_...``). Neo4j gives no
such guarantee to an OPTIONAL MATCH + CREATE (its MERGE locks the endpoints instead), so against
Neo4j (compose) every batch runs the MERGE-based update statement alone
(:attr:`GraphStore.create_first`, decided from the server's agent string); the tests run that
path on ArcadeDB too.

Measured on WN18RR (``benchmarks/bench_ingest.py``): one writer with batches of 2,000 rows is the
fastest setting on ArcadeDB; two concurrent writers were slower (page conflicts and retries).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from neo4j import Driver, GraphDatabase, ManagedTransaction, unit_of_work
from neo4j import exceptions as neo4j_errors
from pydantic import BaseModel, Field

import cypher
from kg_builder.errors import DatabaseError, DatabaseUnavailableError, InvalidInputError
from kg_builder.settings import Settings
from kg_builder.graphdb import schema
from kg_builder.graphdb.schema import ENTITY, RELATION

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
_PROPERTY_SCALARS = (str, int, float, bool)
MAX_ID_LENGTH = 512
MERGE_RACE_ATTEMPTS = 5


# --------------------------------------------------------------------------------------------
# Write rows
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NodeWrite:
    """One node to create or update (MERGE on ``label`` + ``id``)."""

    label: str
    id: str
    name: str | None = None
    description: str | None = None
    props: Mapping[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    job_id: str | None = None


@dataclass(frozen=True, slots=True)
class TripleWrite:
    """One edge ``(head)-[type]->(tail)`` between existing nodes.

    ``relation`` is the relation's original name (kept on the edge); ``rel_type`` defaults to
    :func:`schema.relation_type_for(relation) <kg_builder.graphdb.schema.relation_type_for>`; an
    explicit ``rel_type`` must already be a valid identifier.
    """

    head: str
    relation: str
    tail: str
    head_label: str = ENTITY
    tail_label: str = ENTITY
    rel_type: str | None = None
    confidence: float = 1.0
    sources: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    job_id: str | None = None
    props: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Read results
# --------------------------------------------------------------------------------------------
class GraphNode(BaseModel):
    label: str
    id: str
    properties: dict[str, Any]


class GraphEdge(BaseModel):
    head: str
    head_label: str | None = None
    type: str
    tail: str
    tail_label: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class RelationInfo(BaseModel):
    type: str
    name: str
    description: str | None = None
    sources: list[str] = Field(default_factory=list)


class ExportedTriple(BaseModel):
    head: str
    type: str
    relation: str
    tail: str
    confidence: float | None = None
    sources: list[str] | None = None
    evidence: list[str] | None = None
    job_id: str | None = None


class GraphCounts(BaseModel):
    nodes: dict[str, int]
    edges: dict[str, int]

    @property
    def total_nodes(self) -> int:
        return sum(self.nodes.values())

    @property
    def total_edges(self) -> int:
        return sum(self.edges.values())


# --------------------------------------------------------------------------------------------
# Validation helpers (values become parameters; these guard types and sizes, not injection)
# --------------------------------------------------------------------------------------------
def _check_id(value: object, field_name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(field_name, "must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInputError(field_name, f"is longer than {MAX_ID_LENGTH} characters")
    return value


def _check_props(props: Mapping[str, Any], field_name: str) -> dict[str, Any]:
    if not props:
        return {}
    clean: dict[str, Any] = {}
    for key, value in props.items():
        try:
            cypher.check_identifier(key, "property name")
        except cypher.InvalidIdentifierError as e:
            raise InvalidInputError(f"{field_name}.{key}", str(e)) from e
        if value is None:
            continue  # `n += {k: null}` would delete k: absent means "leave as is"
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(f"{field_name}.{key}", "must be a finite number")
        if isinstance(value, _PROPERTY_SCALARS):
            clean[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, _PROPERTY_SCALARS) for v in value):
            clean[key] = list(value)
        else:
            raise InvalidInputError(f"{field_name}.{key}", "must be a string, number, boolean or list of those")
    return clean


@lru_cache(maxsize=8192)
def _all_strings(values: tuple) -> bool:
    return all(isinstance(v, str) for v in values)


def _str_list(values: Iterable[str], field_name: str) -> Sequence[str]:
    # Provenance tuples repeat across rows (one job, one dataset): checking each distinct tuple once
    # took row preparation of WN18RR's 86,835 triples from 0.5 s to 0.1 s.
    if isinstance(values, tuple):
        try:
            valid = _all_strings(values)
        except TypeError:  # an unhashable element cannot be a string
            valid = False
        if not valid:
            raise InvalidInputError(field_name, "must be a list of strings")
        return values
    out = list(values)
    if out and not all(isinstance(v, str) for v in out):
        raise InvalidInputError(field_name, "must be a list of strings")
    return out


def _node_row(node: NodeWrite) -> dict[str, Any]:
    _check_id(node.id, "id")
    props = _check_props(node.props, "props")
    # name and description are row fields of their own (a literal map on create: see write.cypher);
    # given in props instead, they move there, and the explicit fields win.
    props.pop("name_norm", None)
    name = node.name if node.name is not None else props.pop("name", None)
    description = node.description if node.description is not None else props.pop("description", None)
    props.pop("name", None)
    props.pop("description", None)
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise InvalidInputError("name", "must be a non-empty string when given")
    if description is not None and not isinstance(description, str):
        raise InvalidInputError("description", "must be a string when given")
    aliases = _str_list(node.aliases, "aliases")
    return {
        "id": node.id,
        "name": name,
        "name_norm": schema.normalize_name(name) if name is not None else None,
        "description": description,
        "props": props,
        "sources": _str_list(node.sources, "sources"),
        "aliases": aliases,
        "aliases_norm": sorted({schema.normalize_name(a) for a in aliases} - {""}) if aliases else [],
        "job_id": node.job_id,
    }


def _edge_key(triple: TripleWrite) -> tuple[str, str, str]:
    return _checked_edge_key(triple.rel_type, triple.relation, triple.head_label, triple.tail_label)


@lru_cache(maxsize=4096)
def _checked_edge_key(rel_type: str | None, relation: str, head_label: str, tail_label: str) -> tuple[str, str, str]:
    # An import repeats a few (type, labels) combinations over many rows: check each combination once.
    rel_type = schema.rel_type(rel_type) if rel_type else schema.relation_type_for(relation)
    return rel_type, schema.node_label(head_label), schema.node_label(tail_label)


def _edge_row(triple: TripleWrite) -> dict[str, Any]:
    _check_id(triple.head, "head")
    _check_id(triple.tail, "tail")
    confidence = triple.confidence
    if not isinstance(confidence, (int, float)) or isinstance(confidence, bool) or not 0.0 <= confidence <= 1.0:
        raise InvalidInputError("confidence", f"must be a number between 0 and 1, got {confidence!r}")
    return {
        "head": triple.head,
        "tail": triple.tail,
        "relation": triple.relation,
        "confidence": float(confidence),
        "sources": _str_list(triple.sources, "sources"),
        "evidence": _str_list(triple.evidence, "evidence"),
        "job_id": triple.job_id,
        "props": _check_props(triple.props, "props"),
    }


_NODE_LISTS = ("sources", "aliases", "aliases_norm")
_EDGE_LISTS = ("sources", "evidence")


def _union(first: Sequence[str], second: Sequence[str]) -> list[str]:
    return list(first) + [x for x in second if x not in first]


_NODE_FIELDS = ("name", "name_norm", "description")


def _merge_row(rows: dict[Any, dict[str, Any]], key: Any, row: dict[str, Any], lists: Sequence[str]) -> bool:
    """Add ``row`` under ``key``, merging it into an earlier row with that key the way the database
    update would (later properties win, lists are unions, the highest confidence and the first job
    id stay): one statement must never see a key twice, or it would create it twice. True when merged."""
    earlier = rows.get(key)
    if earlier is None:
        rows[key] = row
        return False
    earlier["props"] = {**earlier["props"], **row["props"]}
    for name in _NODE_FIELDS:
        if row.get(name) is not None:
            earlier[name] = row[name]
    for name in lists:
        earlier[name] = _union(earlier[name], row[name])
    if "confidence" in row:
        earlier["confidence"] = max(earlier["confidence"], row["confidence"])
    if earlier.get("job_id") is None:
        earlier["job_id"] = row.get("job_id")
    return True


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _batches(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------
class GraphStore:
    """Reads and writes kgforge's graph over Bolt.

    Example::

        with GraphStore.from_settings(get_settings()) as store:
            store.setup_schema()
            store.upsert_nodes([NodeWrite(label="Entity", id="umls:virus", name="virus")])
            print(store.counts())
    """

    def __init__(self, driver: Driver, database: str, *, batch_size: int = 2000,
                 reconnect: Callable[[], Driver] | None = None):
        self.driver = driver
        self.database = database
        self.batch_size = batch_size
        self._reconnect = reconnect
        self._create_first: bool | None = None  # decided from the server on the first write

    @classmethod
    def from_settings(cls, settings: Settings, **driver_options: Any) -> "GraphStore":
        options = {"connection_timeout": 10, "max_transaction_retry_time": 30, **driver_options}

        def connect() -> Driver:
            return GraphDatabase.driver(settings.bolt_uri, auth=(settings.graph_user, settings.resolved_graph_password()),
                                        **options)

        return cls(connect(), settings.graph_database, batch_size=settings.graph_batch_size, reconnect=connect)

    def close(self) -> None:
        self.driver.close()

    def __enter__(self) -> "GraphStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transaction plumbing ------------------------------------------------------------------
    def _stale_credentials(self, error: neo4j_errors.AuthError) -> bool:
        """ArcadeDB forgets its Bolt sessions when it restarts; pooled connections then answer
        "credentials ... no longer valid". A new driver (new connections) fixes that: replace it."""
        if self._reconnect is None or "no longer valid" not in str(error):
            return False
        old, self.driver = self.driver, self._reconnect()
        try:
            old.close()
        except Exception:  # noqa: BLE001 - the old pool is broken anyway
            pass
        return True

    def _run(self, write: bool, work: Callable[[ManagedTransaction], Any]) -> Any:
        try:
            return self._session_run(write, work)
        except neo4j_errors.AuthError as e:
            if not self._stale_credentials(e):
                raise DatabaseError(f"graph database refused the credentials ({e}); check KGFORGE_GRAPH_PASSWORD") from e
            return self._session_run(write, work)

    def _session_run(self, write: bool, work: Callable[[ManagedTransaction], Any]) -> Any:
        try:
            with self.driver.session(database=self.database) as session:
                return session.execute_write(work) if write else session.execute_read(work)
        except (neo4j_errors.ServiceUnavailable, neo4j_errors.SessionExpired) as e:
            raise DatabaseUnavailableError(
                f"graph database unreachable ({e}); start it with `kgforge db start` or check KGFORGE_GRAPH_URI"
            ) from e
        except neo4j_errors.AuthError:
            raise
        except neo4j_errors.TransientError as e:
            raise DatabaseUnavailableError(f"graph database transient failure persisted after retries: {e}") from e
        except neo4j_errors.Neo4jError as e:
            raise DatabaseError(f"graph database error: {e}") from e

    def _query(self, text: str, **params: Any) -> list[dict[str, Any]]:
        return self._run(False, lambda tx: [record.data() for record in tx.run(text, **params)])

    def _execute(self, text: str, **params: Any) -> list[dict[str, Any]]:
        return self._run(True, lambda tx: [record.data() for record in tx.run(text, **params)])

    def ping(self) -> bool:
        """True when the database answers a query (raises DatabaseUnavailableError otherwise)."""
        return self._query(cypher.render("ping"))[0]["ok"] == 1

    def server_agent(self) -> str:
        """The server's agent string, e.g. ``Neo4j/5.26.0 compatible (ArcadeDB 26.10.2)``."""
        return self.driver.get_server_info().agent

    @property
    def create_first(self) -> bool:
        """Whether writes run ``create_missing_*`` before the MERGE-based update (ArcadeDB), or the
        update alone (Neo4j, whose MERGE locks both endpoints, so that concurrent writers cannot
        create one edge twice; an OPTIONAL MATCH + CREATE takes no such lock there)."""
        if self._create_first is None:
            try:
                self._create_first = "arcadedb" in self.server_agent().lower()
            except (neo4j_errors.ServiceUnavailable, neo4j_errors.SessionExpired) as e:
                raise DatabaseUnavailableError(f"graph database unreachable ({e}); start it with `kgforge db "
                                               "start` or check KGFORGE_GRAPH_URI") from e
        return self._create_first

    # --- schema ----------------------------------------------------------------------------------
    def setup_schema(self) -> None:
        """Create the id constraints and name indexes (idempotent: safe on every start)."""
        for name, label in schema.ID_CONSTRAINTS:
            self._execute(cypher.render("create_id_constraint", constraint=name, label=label))
        for name, label, prop in schema.PROPERTY_INDEXES:
            self._execute(cypher.render("create_property_index", index=name, label=label, property=prop))

    def constraints(self) -> list[dict[str, Any]]:
        return self._query(cypher.render("show_constraints"))

    # --- writes ----------------------------------------------------------------------------------
    def upsert_nodes(self, nodes: Iterable[NodeWrite], *, progress: Progress | None = None) -> int:
        """Create or update nodes by (label, id) in batches. Returns the number of distinct nodes written.

        Rows repeating a (label, id) are merged first (later properties win, lists are unions).

        Raises:
            InvalidInputError: a label, id, name or property is invalid (nothing is written).
        """
        groups: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        merged: Counter = Counter()  # rows folded into an earlier one, so progress counts every input row
        for node in nodes:
            label = schema.node_label(node.label)
            if _merge_row(groups[label], node.id, _node_row(node), _NODE_LISTS):
                merged[label, node.id] += 1
        written = 0
        for label, by_id in groups.items():
            update = cypher.render("upsert_nodes", label=label)
            for batch in _batches(list(by_id.values()), self.batch_size):
                with_props = any(row["props"] for row in batch)
                create = cypher.render("create_missing_nodes_with_props" if with_props else "create_missing_nodes",
                                       label=label)
                written += self._write_batch(create, update, batch)
                if progress:
                    progress(len(batch) + (sum(merged[label, row["id"]] for row in batch) if merged else 0))
        return written

    def set_node_properties(self, label: str, rows: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
        """Set ``props`` on existing nodes of ``label`` (``(id, props)`` rows, one batch per
        ``batch_size``); a node that does not exist is skipped, never created. Returns the nodes set."""
        label = schema.node_label(label)
        text = cypher.render("set_existing_node_properties", label=label)
        written = 0
        checked = [{"id": _check_id(node_id, "id"), "props": _check_props(props, "props")} for node_id, props in rows]
        for batch in _batches(checked, self.batch_size):
            result = self._run(True, lambda tx, b=batch: tx.run(text, rows=list(b), now=_now()).data())
            written += int(result[0]["written"]) if result else 0
        return written

    def upsert_triples(self, triples: Iterable[TripleWrite], *, progress: Progress | None = None) -> int:
        """Create or update edges between existing nodes in batches. Returns the number of distinct edges written.

        There is at most one edge of a type between two nodes: rows repeating (type, head, tail) are
        merged first (highest confidence, unions of sources and evidence, later properties win).
        Every row of a batch must find its head and tail; otherwise the batch's transaction is
        rolled back and DatabaseError names the missing ids (write the nodes first).

        Raises:
            InvalidInputError: a relation type, label, id, confidence or property is invalid
                (validated for all rows before anything is written).
        """
        groups: dict[tuple[str, str, str], dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
        merged: Counter = Counter()  # rows folded into an earlier one, so progress counts every input row
        for triple in triples:
            row, key = _edge_row(triple), _edge_key(triple)
            if _merge_row(groups[key], (row["head"], row["tail"]), row, _EDGE_LISTS):
                merged[key, row["head"], row["tail"]] += 1
        written = 0
        for (rel_type, head_label, tail_label), by_pair in groups.items():
            labels = {"rel_type": rel_type, "head_label": head_label, "tail_label": tail_label}
            update = cypher.render("upsert_edges", **labels)
            for batch in _batches(list(by_pair.values()), self.batch_size):
                with_props = any(row["props"] for row in batch)
                create = cypher.render("create_missing_edges_with_props" if with_props else "create_missing_edges",
                                       **labels)
                got = self._write_batch(create, update, batch)
                for attempt in range(1, MERGE_RACE_ATTEMPTS + 1):
                    if got is not None:
                        break
                    self._raise_missing_endpoints(batch, head_label, tail_label, rel_type)
                    # Every endpoint exists: a concurrent writer created some of these edges between
                    # this transaction's create and update steps (seen on ArcadeDB under load with four
                    # writers of one edge set). The batch was rolled back; replaying it updates them.
                    log.info("edge batch lost a race with another writer (attempt %d); replaying it", attempt)
                    time.sleep(random.uniform(0.01, 0.05) * attempt)
                    got = self._write_batch(create, update, batch)
                if got is None:
                    raise DatabaseError(f"a batch of {rel_type} edges kept racing with other writers after "
                                        f"{MERGE_RACE_ATTEMPTS} replays; nothing of it was written")
                written += got
                if progress:
                    key = (rel_type, head_label, tail_label)
                    progress(len(batch) + (sum(merged[key, row["head"], row["tail"]] for row in batch) if merged else 0))
        return written

    def _write_batch(self, create: str, update: str, rows: Sequence[dict[str, Any]]) -> int | None:
        """Write one batch in one managed transaction: ``create`` makes the rows that do not exist
        yet, ``update`` the rest. None (and a rollback) when rows went missing (absent endpoints)."""
        now = _now()
        create_first = self.create_first
        numbered = list(rows)
        for i, row in enumerate(numbered):  # rows are this store's own dicts: number them in place
            row["i"] = i

        class _Incomplete(Exception):
            pass

        def work(tx: ManagedTransaction) -> int:
            created = set(tx.run(create, rows=numbered, now=now).single()["created"]) if create_first else set()
            written = len(created)
            existing = [row for row in numbered if row["i"] not in created]
            if existing:
                written += tx.run(update, rows=existing, now=now).single()["written"]
            if written != len(rows):
                raise _Incomplete(written)
            return written

        for attempt in range(1, MERGE_RACE_ATTEMPTS + 1):
            try:
                return self._run(True, work)
            except _Incomplete:
                return None
            except DatabaseError as e:
                # Two transactions creating the same new key at once (workers writing one entity): the
                # unique constraint fails the loser (ArcadeDB does not serialise them as Neo4j's MERGE
                # locks do). Replaying the batch finds the winner's node and updates it, so an
                # idempotent upsert retries that race and nothing else.
                if not isinstance(e.__cause__, neo4j_errors.ConstraintError) or attempt == MERGE_RACE_ATTEMPTS:
                    raise
                log.info("upsert lost a create race (attempt %d); replaying the batch", attempt)
                time.sleep(random.uniform(0.01, 0.05) * attempt)
        return None  # unreachable: the last attempt returns or raises

    def _raise_missing_endpoints(self, batch: Sequence[dict[str, Any]], head_label: str, tail_label: str,
                                 rel_type: str) -> None:
        """Raise DatabaseError naming the endpoints of ``batch`` that do not exist; return when all do."""
        missing: list[str] = []
        for label, key in ((head_label, "head"), (tail_label, "tail")):
            ids = sorted({row[key] for row in batch})
            found = {n["props"]["id"] for n in self._query(cypher.render("nodes_by_ids", label=label), ids=ids)}
            missing += [f"{label} {i!r}" for i in ids if i not in found]
        if not missing:
            return
        raise DatabaseError(
            f"{len(missing)} endpoint(s) of {rel_type} edges do not exist (nothing of this batch was written): "
            f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}; write the nodes first"
        )

    def register_relations(self, relations: Iterable[tuple[str, str | None]], *, source: str) -> dict[str, str]:
        """Add relations (name, description) to the relation pool; returns name -> relationship type.

        Raises:
            InvalidInputError: two names map to one type, or a name maps to no valid type.
        """
        mapping: dict[str, str] = {}
        owner: dict[str, str] = {}
        nodes = []
        for name, description in relations:
            rel_type = schema.relation_type_for(name)
            if rel_type in owner and owner[rel_type] != name:
                raise InvalidInputError(
                    "relation", f"{name!r} and {owner[rel_type]!r} both map to relationship type {rel_type}"
                )
            owner[rel_type] = name
            mapping[name] = rel_type
            nodes.append(NodeWrite(label=RELATION, id=rel_type, name=name, description=description, sources=(source,)))
        self.upsert_nodes(nodes)
        return mapping

    def wipe(self, *, batch: int = 10_000) -> int:
        """Delete every node and edge in bounded transactions. Returns the number of nodes deleted."""
        total = 0
        text = cypher.render("delete_some_nodes")
        while True:
            deleted = self._execute(text, limit=batch)[0]["deleted"]
            total += deleted
            if deleted == 0:
                return total

    # --- reads -----------------------------------------------------------------------------------
    def get_node(self, node_id: str, label: str | None = None) -> GraphNode | None:
        """The node with this id (of ``label``, or of any label when None)."""
        _check_id(node_id, "id")
        labels = (schema.node_label(label),) if label else schema.NODE_LABELS

        def work(tx: ManagedTransaction) -> GraphNode | None:
            for candidate in labels:
                record = tx.run(cypher.render("node_by_id", label=candidate), id=node_id).single()
                if record is not None:
                    return GraphNode(label=candidate, id=node_id, properties=record["props"])
            return None

        return self._run(False, work)

    def find_nodes_by_name(self, name: str, label: str = ENTITY, *, limit: int = 10) -> list[GraphNode]:
        """Nodes of ``label`` whose name equals ``name`` exactly or after :func:`normalize_name`."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError("name", "must be a non-empty string")
        rows = self._query(
            cypher.render("nodes_by_name", label=schema.node_label(label)),
            name_norm=schema.normalize_name(name), limit=int(limit),
        )
        return [GraphNode(label=label, id=r["props"]["id"], properties=r["props"]) for r in rows]

    def find_nodes_by_alias(self, alias: str, label: str = ENTITY, *, limit: int = 10) -> list[GraphNode]:
        """Nodes of ``label`` that list ``alias`` (compared after :func:`normalize_name`) among their aliases."""
        if not isinstance(alias, str) or not alias.strip():
            raise InvalidInputError("alias", "must be a non-empty string")
        rows = self._query(cypher.render("nodes_by_alias", label=schema.node_label(label)),
                           alias_norm=schema.normalize_name(alias), limit=int(limit))
        return [GraphNode(label=label, id=r["props"]["id"], properties=r["props"]) for r in rows]

    def neighbourhood(self, node_id: str, label: str = ENTITY, *, hops: int = 1, limit: int = 100,
                      timeout: float | None = None) -> list[GraphEdge]:
        """Distinct edges within ``hops`` (1-3) of a node, both directions, at most ``limit`` (1-10,000).

        ``timeout`` (s) is sent as the transaction timeout: Neo4j ends the read past it (a ClientError
        ``...TransactionTimedOut...``, raised here as DatabaseError); ArcadeDB's Bolt server ignores it,
        so callers that must bound the wait also keep a deadline of their own (api/routers/entities.py).
        """
        _check_id(node_id, "id")
        if not isinstance(hops, int) or not 1 <= hops <= 3:
            raise InvalidInputError("hops", "must be an integer from 1 to 3")
        if not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidInputError("limit", "must be an integer from 1 to 10000")
        text = cypher.render("neighbourhood", label=schema.node_label(label), hops=hops)
        rows = self._run(False, unit_of_work(timeout=timeout)(
            lambda tx: [record.data() for record in tx.run(text, id=node_id, limit=limit)]))
        return [
            GraphEdge(head=r["head"], head_label=(r["head_labels"] or [None])[0], type=r["type"], tail=r["tail"],
                      tail_label=(r["tail_labels"] or [None])[0], properties=r["props"])
            for r in rows
        ]

    def neighbour_page(self, node_id: str, label: str = ENTITY, *, offset: int = 0, limit: int = 50,
                       timeout: float | None = None) -> list[GraphEdge]:
        """A page of the node's distinct 1-hop edges (both directions), ordered on the server by
        confidence (highest first; none counts as -1), type, head id and tail id: only the page
        crosses the wire. ``timeout`` as in :meth:`neighbourhood`."""
        _check_id(node_id, "id")
        if not isinstance(offset, int) or not 0 <= offset <= 1_000_000:
            raise InvalidInputError("offset", "must be an integer from 0 to 1000000")
        if not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidInputError("limit", "must be an integer from 1 to 10000")
        text = cypher.render("neighbour_page", label=schema.node_label(label))
        rows = self._run(False, unit_of_work(timeout=timeout)(
            lambda tx: [record.data() for record in tx.run(text, id=node_id, offset=offset, limit=limit)]))
        return [
            GraphEdge(head=r["head"], head_label=(r["head_labels"] or [None])[0], type=r["type"], tail=r["tail"],
                      tail_label=(r["tail_labels"] or [None])[0], properties=r["props"])
            for r in rows
        ]

    def relation_pool(self) -> list[RelationInfo]:
        """Every relation type with its original name and description."""
        return [
            RelationInfo(type=r["type"], name=r["name"] or r["type"], description=r["description"],
                         sources=r["sources"] or [])
            for r in self._query(cypher.render("relation_pool"))
        ]

    def node_names(self, label: str = ENTITY) -> list[tuple[str, str, str | None]]:
        """(id, name, type) of every named node of ``label``."""
        rows = self._query(cypher.render("node_names", label=schema.node_label(label)))
        return [(r["id"], r["name"], r["type"]) for r in rows]

    def entity_profiles(self) -> list[dict[str, Any]]:
        """(id, name, description, type, job_id, domain) of every named ``Entity`` node (``job_id``: the job that
        created it). Reads the whole graph: jobs read bounded neighbourhoods instead (``domain_*`` below)."""
        return self._query(cypher.render("entity_profiles"))

    # --- bounded reads of one domain (a job's snapshot: kg_builder/pipeline/snapshot.py) -----------
    # A node belongs to a domain when its `domain` property is that domain or when it has none
    # (nodes a job created); `exclude_job` leaves out what that job created. Every read starts from
    # an index (id, name_norm, domain) of one label in ``labels`` (one statement per label: a KG
    # domain's knowledge nodes are Entity nodes; a product domain's are Item, Brand, Category and
    # Entity nodes), so its cost does not grow with other domains' data.
    @staticmethod
    def _labels(labels: Sequence[str]) -> list[str]:
        checked = [schema.node_label(label) for label in dict.fromkeys(labels)]
        if not checked:
            raise InvalidInputError("labels", "name at least one node label")
        return checked

    def domain_entities_by_ids(self, domain: str, ids: Iterable[str], *, exclude_job: str | None = None,
                               chunk: int = 1000, labels: Sequence[str] = (ENTITY,)) -> list[dict[str, Any]]:
        """(id, name, description, type) of the named nodes of ``domain`` among ``ids``; each id is
        looked up under the label its key has (:func:`schema.label_for_key`) when that label is in
        ``labels``, else under every label of ``labels``."""
        wanted = list(dict.fromkeys(_check_id(i, "id") for i in ids))
        allowed = self._labels(labels)
        by_label: dict[str, list[str]] = {label: [] for label in allowed}
        for node_id in wanted:
            label = schema.label_for_key(node_id)
            for target in ([label] if label in by_label else allowed):
                by_label[target].append(node_id)
        rows: list[dict[str, Any]] = []
        for label, label_ids in by_label.items():
            text = cypher.render("snapshot_entities_by_ids", label=label)
            for batch in _batches(label_ids, chunk):
                rows += self._query(text, ids=list(batch), domain=domain, exclude_job=exclude_job)
        return rows

    def domain_entities_by_names(self, domain: str, names: Iterable[str], *, exclude_job: str | None = None,
                                 labels: Sequence[str] = (ENTITY,)) -> list[dict[str, Any]]:
        """Named nodes of ``domain`` (of ``labels``) whose normalised name equals one of ``names``'
        (ordered by id); each row has ``name_norm``."""
        norms = sorted({schema.normalize_name(n) for n in names} - {""})
        if not norms:
            return []
        rows: list[dict[str, Any]] = []
        for label in self._labels(labels):
            rows += self._query(cypher.render("snapshot_entities_by_names", label=label), names_norm=norms,
                                domain=domain, exclude_job=exclude_job)
        return sorted(rows, key=lambda r: r["id"])

    def domain_edges(self, domain: str, ids: Iterable[str], *, direction: str, exclude_job: str | None = None,
                     limit: int = 100_000, labels: Sequence[str] = (ENTITY,)) -> list[dict[str, Any]]:
        """Edges between the nodes ``ids`` (looked up by their keys' labels among ``labels``) and
        named nodes of ``domain``.

        ``direction="out"``: rows ``head, relation`` and the tail's ``id, name, description, type``;
        ``direction="in"``: rows ``tail, relation`` and the head's profile. At most ``limit`` rows.
        """
        if direction not in ("out", "in"):
            raise InvalidInputError("direction", f"must be 'out' or 'in', got {direction!r}")
        if not isinstance(limit, int) or limit < 1:
            raise InvalidInputError("limit", "must be a positive integer")
        wanted = list(dict.fromkeys(_check_id(i, "id") for i in ids))
        allowed = self._labels(labels)
        by_label: dict[str, list[str]] = {}
        for node_id in wanted:
            label = schema.label_for_key(node_id)
            for target in ([label] if label in allowed else allowed):
                by_label.setdefault(target, []).append(node_id)
        rows: list[dict[str, Any]] = []
        for label, label_ids in by_label.items():
            if len(rows) >= limit:
                break
            rows += self._query(cypher.render(f"snapshot_{direction}_edges", label=label), ids=label_ids,
                                domain=domain, exclude_job=exclude_job, limit=limit - len(rows))
        return rows

    def domain_relation_range(self, domain: str, relation: str, *, exclude_job: str | None = None,
                              limit: int = 10_000, labels: Sequence[str] = (ENTITY,)) -> list[dict[str, Any]]:
        """Tails of ``relation`` from ``domain``'s heads (of ``labels``), most frequent first: rows
        ``tail``, ``count`` and the tail's ``name, description, type``."""
        rel_type = schema.relation_type_for(relation)
        counts: dict[str, dict[str, Any]] = {}
        for label in self._labels(labels):
            for row in self._query(cypher.render("snapshot_relation_range", rel_type=rel_type, label=label),
                                   domain=domain, exclude_job=exclude_job, limit=int(limit)):
                if row["tail"] in counts:
                    counts[row["tail"]]["count"] += row["count"]
                else:
                    counts[row["tail"]] = dict(row)
        return sorted(counts.values(), key=lambda r: (-r["count"], r["tail"]))[: int(limit)]

    def domain_entities(self, domain: str, *, exclude_job: str | None = None,
                        labels: Sequence[str] = (ENTITY,)) -> list[dict[str, Any]]:
        """(id, name, description, type) of every named node (of ``labels``) of ``domain`` not created
        by ``exclude_job`` (a whole-domain read)."""
        return [row for label in self._labels(labels)
                for row in self._query(cypher.render("snapshot_domain_entities", label=label), domain=domain,
                                       exclude_job=exclude_job)]

    def domain_relation_pool(self, domain: str) -> list[RelationInfo]:
        """The relations that dataset ``domain``'s import registered (source ``dataset:<domain>``)."""
        return [RelationInfo(type=r["type"], name=r["name"] or r["type"], description=r["description"])
                for r in self._query(cypher.render("snapshot_relation_pool"), source=f"dataset:{domain}")]

    def domain_entity_profiles(self, domain: str, *, labels: Sequence[str] = (ENTITY,)) -> list[dict[str, Any]]:
        """(id, name, description, type) of every named node (of ``labels``) whose ``domain`` is ``domain``."""
        return [row for label in self._labels(labels)
                for row in self._query(cypher.render("domain_entity_profiles", label=label), domain=domain)]

    def count_domain_entities(self, domain: str, *, labels: Sequence[str] = (ENTITY,)) -> int:
        """Number of nodes (of ``labels``) whose ``domain`` is ``domain``."""
        return sum(int(self._query(cypher.render("count_domain_entities", label=label), domain=domain)[0]["count"])
                   for label in self._labels(labels))

    def export_triples(self, *, fetch_size: int = 2000) -> Iterator[ExportedTriple]:
        """Stream every edge with provenance, ``fetch_size`` records per round trip.

        A read in an auto-commit transaction, deliberately: a managed transaction would have to
        hold the whole result in memory; reads leave nothing half-done when they fail.
        """
        try:
            with self.driver.session(database=self.database, fetch_size=fetch_size) as session:
                for record in session.run(cypher.render("export_triples")):
                    yield ExportedTriple(**record.data())
        except (neo4j_errors.ServiceUnavailable, neo4j_errors.SessionExpired) as e:
            raise DatabaseUnavailableError(f"graph database went away during export: {e}") from e
        except neo4j_errors.AuthError as e:
            if self._stale_credentials(e):
                raise DatabaseUnavailableError(f"graph database restarted during export (reconnected): {e}") from e
            raise DatabaseError(f"graph database refused the credentials ({e}); check KGFORGE_GRAPH_PASSWORD") from e

    def counts(self) -> GraphCounts:
        """Node counts per label and edge counts per relationship type."""
        nodes: dict[str, int] = defaultdict(int)
        for row in self._query(cypher.render("count_nodes_by_label")):
            nodes[(row["labels"] or ["(none)"])[0]] += row["count"]
        edges = {row["type"]: row["count"] for row in self._query(cypher.render("count_edges_by_type"))}
        return GraphCounts(nodes=dict(nodes), edges=edges)

    def count_duplicate_edges(self) -> int:
        """Surplus edges with the same (head, type, tail); an idempotent writer keeps this at 0."""
        return self._query(cypher.render("count_duplicate_edges"))[0]["duplicates"]
