"""``/v1/entities``: a node with its neighbours (confidence and provenance), by id or by name.

Neighbour pages are ordered by confidence (highest first), then type, head and tail. The store
returns at most a window of edges per node (``NEIGHBOUR_WINDOW``, or the page end when larger, up
to 10,000); the order, and so the paging, is exact for any node with fewer edges than that.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status

from api.deps import ServicesDep
from api.errors import invalid
from api.schemas import EntitiesPublic, EntityPublic, ErrorPublic, NeighbourPublic, NodePublic
from kg_builder.graphdb import GraphStore, schema
from kg_builder.graphdb.graph import GraphEdge, GraphNode

router = APIRouter(prefix="/v1/entities", tags=["entities"])

NEIGHBOUR_WINDOW = 1000
MAX_WINDOW = 10_000
PROVENANCE = ("confidence", "sources", "evidence", "job_id", "relation")
Label = Annotated[
    str | None, Query(description=f"One of {', '.join(schema.NODE_LABELS)}; default: any label.")
]
Hops = Annotated[int, Query(ge=1, le=3)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_WINDOW)]


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a property value (driver temporal types become ISO strings; NaN None)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _node(node: GraphNode) -> NodePublic:
    props = {k: _plain(v) for k, v in node.properties.items()}
    return NodePublic(id=node.id, label=node.label, name=props.get("name"), properties=props)


def _neighbour(edge: GraphEdge, node_id: str) -> NeighbourPublic:
    props = {k: _plain(v) for k, v in edge.properties.items()}
    direction = "out" if edge.head == node_id else "in" if edge.tail == node_id else "around"
    confidence = props.get("confidence")
    return NeighbourPublic(
        head=edge.head,
        head_label=edge.head_label,
        type=edge.type,
        relation=props.get("relation") or edge.type,
        tail=edge.tail,
        tail_label=edge.tail_label,
        direction=direction,
        confidence=float(confidence) if isinstance(confidence, (int, float)) else None,
        sources=list(props.get("sources") or []),
        evidence=list(props.get("evidence") or []),
        job_id=props.get("job_id"),
        properties={k: v for k, v in props.items() if k not in PROVENANCE},
    )


def _sort_key(n: NeighbourPublic) -> tuple:
    return (-(n.confidence if n.confidence is not None else -1.0), n.type, n.head, n.tail)


def _entity(store: GraphStore, node: GraphNode, *, hops: int, limit: int, offset: int) -> EntityPublic:
    if limit == 0:
        return EntityPublic(node=_node(node), neighbours=[], limit=0, offset=offset, has_more=False)
    window = min(MAX_WINDOW, max(NEIGHBOUR_WINDOW, offset + limit + 1))
    edges = store.neighbourhood(node.id, node.label, hops=hops, limit=window)
    neighbours = sorted((_neighbour(e, node.id) for e in edges), key=_sort_key)
    return EntityPublic(
        node=_node(node),
        neighbours=neighbours[offset : offset + limit],
        limit=limit,
        offset=offset,
        has_more=len(neighbours) > offset + limit,
    )


def _check_label(label: str | None) -> str | None:
    if label is not None and label not in schema.NODE_LABELS:
        return f"{label!r} is not a node label; use one of {', '.join(schema.NODE_LABELS)}"
    return None


@router.get("/{entity_id:path}", response_model=EntityPublic, responses={404: {"model": ErrorPublic}})
def get_entity(
    entity_id: Annotated[str, Path(min_length=1, max_length=512)],
    services: ServicesDep,
    label: Label = None,
    hops: Hops = 1,
    limit: Limit = 50,
    offset: Offset = 0,
):
    """The node with this id (``umls:virus``), its properties, and a page of its neighbours."""
    problem = _check_label(label)
    if problem:
        return invalid("label", problem, where="query")
    if not entity_id.strip():
        return invalid("entity_id", "must not be blank", where="path")
    node = services.graph.get_node(entity_id, label)
    if node is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no node with id {entity_id!r}")
    return _entity(services.graph, node, hops=hops, limit=limit, offset=offset)


@router.get("", response_model=EntitiesPublic)
def find_entities(
    services: ServicesDep,
    name: Annotated[str, Query(min_length=1, max_length=300)],
    label: Annotated[str | None, Query(description="Node label to search (default: Entity, Item, Brand and "
                                                   "Category: KG entities and the product graph).")] = None,
    domain: Annotated[str | None, Query(max_length=64, description="Only nodes of this domain (or of none).")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    offset: Annotated[int, Query(ge=0, le=900)] = 0,
    neighbours: Annotated[int, Query(ge=0, le=100, description="Neighbours per node.")] = 10,
):
    """Nodes whose name matches ``name`` (exactly, or after case, punctuation and spacing are
    folded), each with its first ``neighbours`` neighbours: KG entities, items, brands and
    categories unless ``label`` picks one; ``domain`` keeps the nodes of that domain (and those
    without one: shared brands and categories, nodes jobs created)."""
    problem = _check_label(label)
    if problem:
        return invalid("label", problem, where="query")
    if not name.strip():
        return invalid("name", "must not be blank", where="query")
    store = services.graph
    found = [node for one in ([label] if label else schema.KNOWLEDGE_LABELS)
             for node in store.find_nodes_by_name(name, one, limit=offset + limit + 1)
             if domain is None or node.properties.get("domain") in (None, domain)]
    page = found[offset : offset + limit]
    items = [_entity(store, node, hops=1, limit=neighbours, offset=0) for node in page]
    return EntitiesPublic(items=items, limit=limit, offset=offset, has_more=len(found) > offset + limit)
