"""EntityResolver: map generated entity names to graph nodes without ever creating duplicates.

Order of evidence for one candidate name (DESIGN.md 4.5):

1. **job**: the same normalised name was already resolved in this run;
2. **exact**: a node of the label whose ``name_norm`` equals the candidate's
   (:func:`~kg_builder.store.schema.normalize_name`: case, punctuation, spacing and Unicode
   forms folded), through the ``name_norm`` index;
3. **alias**: a node that lists the name among its aliases (compared normalised);
4. **embedding**: the nearest existing name in a :class:`NameIndex` (MiniLM cosine) at or above
   ``threshold``, with a compatible type (equal, or either one unknown); the surface form is then
   kept as an alias of that node, so the next lookup is exact;
5. **new**: a node with the deterministic id ``{namespace}:{key_part(name)}`` (suffixed with the
   type when an incompatible node already holds that id). Two jobs that create the same entity at
   the same time MERGE onto that one id, so even a race makes one node.

The resolver writes what it decided (new nodes, new aliases) in one batch and returns a typed
result; the pipeline then writes the edges.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel

from kg_builder.errors import InvalidInputError
from kg_builder.models.encoder import TextEncoder
from kg_builder.store import GraphStore, NodeWrite
from kg_builder.store import schema
from kg_builder.store.schema import ENTITY

Method = Literal["job", "exact", "alias", "embedding", "new"]


class Candidate(BaseModel):
    """A generated entity: its surface name and, when known, its type."""

    name: str
    type: str | None = None


class Resolution(BaseModel):
    name: str
    node_id: str
    method: Method
    score: float = 1.0
    created: bool = False


class ResolutionResult(BaseModel):
    resolutions: list[Resolution]
    created: int = 0
    merged: int = 0
    aliases_added: int = 0

    def node_id(self, name: str) -> str:
        norm = schema.normalize_name(name)
        for resolution in self.resolutions:
            if schema.normalize_name(resolution.name) == norm:
                return resolution.node_id
        raise KeyError(name)


def _compatible(a: str | None, b: str | None) -> bool:
    return a is None or b is None or schema.normalize_name(a) == schema.normalize_name(b)


class NameIndex:
    """MiniLM embeddings of existing node names for similarity matching (exact cosine, NumPy).

    Shapes:
        vectors: [n_names, 384], rows L2-normalised.
    """

    def __init__(self, encoder: TextEncoder, ids: list[str] | None = None, names: list[str] | None = None,
                 types: list[str | None] | None = None):
        self.encoder = encoder
        self.ids: list[str] = list(ids or [])
        self.names: list[str] = list(names or [])
        self.types: list[str | None] = list(types or [None] * len(self.ids))
        self.vectors = encoder.encode(self.names) if self.names else np.zeros((0, encoder.dim), np.float32)

    @classmethod
    def from_store(cls, store: GraphStore, encoder: TextEncoder, label: str = ENTITY) -> "NameIndex":
        rows = store.node_names(label)
        return cls(encoder, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])

    def add(self, node_id: str, name: str, type_: str | None = None) -> None:
        self.ids.append(node_id)
        self.names.append(name)
        self.types.append(type_)
        self.vectors = np.vstack([self.vectors, self.encoder.encode([name])])

    def nearest(self, name: str, k: int = 5) -> list[tuple[str, float, str | None]]:
        if not self.ids:
            return []
        scores = self.vectors @ self.encoder.encode([name])[0]
        top = np.argsort(-scores)[:k]
        return [(self.ids[i], float(scores[i]), self.types[i]) for i in top]


class EntityResolver:
    """Resolve candidate names against the graph (see the module docstring for the order).

    Args:
        store: the graph.
        label: node label the candidates belong to (``Entity`` for generated knowledge).
        namespace: prefix of new node ids (``kg`` gives ``kg:air-jordan``).
        name_index: optional embedding index; without it step 4 is skipped.
        threshold: minimum cosine similarity for an embedding match. With MiniLM, 0.9 merges
            "Air Jordans" into "Air Jordan" (0.94) and "viruses" into "virus" (0.93) and keeps "cell
            membrane" (0.71 to "cell") and "basketball shoe" (0.65 to "basketball") apart.
    """

    def __init__(self, store: GraphStore, *, label: str = ENTITY, namespace: str = "kg",
                 name_index: NameIndex | None = None, threshold: float = 0.9):
        self.store = store
        self.label = schema.node_label(label)
        self.namespace = namespace
        self.name_index = name_index
        self.threshold = threshold

    def new_id(self, name: str) -> str:
        part = schema.key_part(name)
        if not part:
            raise InvalidInputError("name", f"{name!r} has no letters or digits")
        return f"{self.namespace}:{part}"

    def run(self, candidates: list[Candidate], *, source: str, job_id: str | None = None) -> ResolutionResult:
        """Resolve every candidate, write new nodes and aliases, return one Resolution per candidate."""
        seen: dict[tuple[str, str | None], Resolution] = {}
        resolutions: list[Resolution] = []
        writes: dict[str, NodeWrite] = {}
        aliases_added = 0
        for candidate in candidates:
            norm = schema.normalize_name(candidate.name)
            if not norm:
                raise InvalidInputError("name", f"{candidate.name!r} has no letters or digits")
            key = (norm, schema.normalize_name(candidate.type) if candidate.type else None)
            if key in seen:
                resolutions.append(seen[key].model_copy(update={"name": candidate.name, "method": "job",
                                                                "created": False}))
                continue
            resolution, write = self._resolve(candidate, source=source, job_id=job_id, pending=writes)
            if write is not None:
                writes[write.id] = write
                aliases_added += int(resolution.method == "embedding")
            seen[key] = resolution
            resolutions.append(resolution)
        if writes:
            self.store.upsert_nodes(list(writes.values()))
        created = sum(r.created for r in resolutions)
        return ResolutionResult(resolutions=resolutions, created=created,
                                merged=len(resolutions) - created, aliases_added=aliases_added)

    def _resolve(self, candidate: Candidate, *, source: str, job_id: str | None,
                 pending: dict[str, NodeWrite]) -> tuple[Resolution, NodeWrite | None]:
        for method, found in (("exact", self.store.find_nodes_by_name(candidate.name, self.label)),
                              ("alias", self.store.find_nodes_by_alias(candidate.name, self.label))):
            for node in found:
                if _compatible(candidate.type, node.properties.get("type")):
                    return Resolution(name=candidate.name, node_id=node.id, method=method), None
        if self.name_index is not None:
            for node_id, score, node_type in self.name_index.nearest(candidate.name):
                if score >= self.threshold and _compatible(candidate.type, node_type):
                    alias = NodeWrite(label=self.label, id=node_id, aliases=(candidate.name,), sources=(source,))
                    return Resolution(name=candidate.name, node_id=node_id, method="embedding", score=score), alias
        node_id = self.new_id(candidate.name)
        taken = pending.get(node_id)
        taken_type = taken.props.get("type") if taken is not None else None
        if taken is None:
            existing = self.store.get_node(node_id, self.label)
            taken_type = existing.properties.get("type") if existing is not None else None
            taken = existing
        if taken is not None and not _compatible(candidate.type, taken_type):
            # the plain id belongs to another sense of the name ("Air" the brand, "air" the gas)
            node_id = f"{node_id}:{schema.key_part(candidate.type or '')}"
        write = NodeWrite(label=self.label, id=node_id, name=candidate.name, props={"type": candidate.type},
                          sources=(source,), job_id=job_id)
        if self.name_index is not None:
            self.name_index.add(node_id, candidate.name, candidate.type)
        return Resolution(name=candidate.name, node_id=node_id, method="new", created=True), write


__all__ = ["Candidate", "EntityResolver", "NameIndex", "Resolution", "ResolutionResult"]
