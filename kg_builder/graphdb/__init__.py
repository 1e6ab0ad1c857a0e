"""Graph store: driver lifecycle, schema, batched idempotent writes, reads, the embedded database."""

from kg_builder.graphdb.graph import (
    ExportedTriple,
    GraphCounts,
    GraphEdge,
    GraphNode,
    GraphStore,
    NodeWrite,
    RelationInfo,
    TripleWrite,
)

__all__ = [
    "ExportedTriple",
    "GraphCounts",
    "GraphEdge",
    "GraphNode",
    "GraphStore",
    "NodeWrite",
    "RelationInfo",
    "TripleWrite",
]
