"""``/v1/entities``: a node with its neighbours (confidence and provenance), by id or by name.

Neighbour pages are ordered by confidence (highest first; an edge without one counts as -1), then
type, head and tail. A 1-hop page is cut on the database server (``GraphStore.neighbour_page``: only
the page crosses the wire), so its order is exact whatever the node's degree. For 2 and 3 hops the
store returns at most a window of edges (``NEIGHBOUR_WINDOW[hops]``, or the page end when larger, up
to ``MAX_WINDOW[hops]``), ordered here; the order, and so the paging, is exact for any node with
fewer edges within ``hops`` than that.

Cost bounds (issue 13): a 2- or 3-hop read expands paths, whose number grows with the degree to the
power of ``hops``, so deeper reads get smaller pages and windows:

====  ===========  ==================  ====================
hops  max limit    max offset + limit  window (edges read)
====  ===========  ==================  ====================
1     500          10,000 (offset)     the page (server-side)
2     100          1,000               500 up to 1,000
3     50           200                 200
====  ===========  ==================  ====================

A page past these gets 422 naming ``limit`` (or ``offset``). Every neighbourhood read also has a time
limit, ``KGFORGE_GRAPH_READ_TIMEOUT_S`` (default 5 s): it is sent as the transaction timeout, which
Neo4j (compose) enforces on the server; ArcadeDB's Bolt server (embedded mode) ignores the Bolt
``tx_timeout``, so 2- and 3-hop reads also run under a deadline here: at most ``DEEP_READS`` of them
at once per API process, and a read past the deadline answers 503 with ``Retry-After``. The server
may still finish such a read in the background (its connection returns to the pool afterwards); the
small windows above bound that work.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from neo4j import exceptions as neo4j_errors

from api.deps import ServicesDep
from api.errors import invalid
from api.schemas import EntitiesPublic, EntityPublic, ErrorPublic, NeighbourPublic, NodePublic
from kg_builder.errors import DatabaseError
from kg_builder.graphdb import GraphStore, schema
from kg_builder.graphdb.graph import GraphEdge, GraphNode

router = APIRouter(prefix="/v1/entities", tags=["entities"])

NEIGHBOUR_WINDOW = {2: 500, 3: 200}
MAX_WINDOW = {1: 10_000, 2: 1000, 3: 200}  # hops 1: the largest offset (paged on the server)
MAX_LIMIT = {1: 500, 2: 100, 3: 50}
DEEP_READS = 4  # 2-3 hop reads in flight per API process; more wait (within their deadline)
RETRY_AFTER_S = 5
_deep_reads = ThreadPoolExecutor(max_workers=DEEP_READS, thread_name_prefix="kgforge-deep-read")
PROVENANCE = ("confidence", "sources", "evidence", "job_id", "relation")
Label = Annotated[
    str | None, Query(description=f"One of {', '.join(schema.NODE_LABELS)}; default: any label.")
]
Hops = Annotated[int, Query(ge=1, le=3)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_WINDOW[1])]


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


def _edge_key(e: GraphEdge) -> tuple:
    """The neighbour order (module docstring) of a store edge, as ``neighbour_page`` orders on the server."""
    confidence = e.properties.get("confidence")
    known = isinstance(confidence, (int, float)) and not isinstance(confidence, bool) and math.isfinite(confidence)
    return (-(float(confidence) if known else -1.0), e.type, e.head, e.tail)


def _page_problem(hops: int, limit: int, offset: int) -> tuple[str, str] | None:
    """(field, reason) when a page is past the bounds of ``hops`` (module docstring), else None."""
    if limit > MAX_LIMIT[hops]:
        return "limit", f"at most {MAX_LIMIT[hops]} with hops={hops} (deeper reads get smaller pages)"
    if hops > 1 and offset + limit > MAX_WINDOW[hops]:
        return "offset", f"offset + limit at most {MAX_WINDOW[hops]} with hops={hops}"
    return None


def _timed_out(e: BaseException) -> bool:
    cause = e.__cause__
    return isinstance(cause, neo4j_errors.ClientError) and "TimedOut" in (cause.code or "")


def _too_slow(hops: int, timeout: float) -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"the {hops}-hop neighbourhood read took longer than {timeout:g} s (KGFORGE_GRAPH_READ_TIMEOUT_S); "
        "ask for fewer hops or a smaller page",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def _neighbourhood(store: GraphStore, node: GraphNode, *, hops: int, window: int, offset: int,
                   timeout: float) -> list[GraphEdge]:
    """The store's read, bounded by ``timeout`` on the server (where honoured) and, for 2-3 hops, by
    a deadline here (module docstring). 1 hop: the page from ``offset`` (``window`` edges); 2-3 hops:
    the first ``window`` edges, unordered."""
    try:
        if hops == 1:
            return store.neighbour_page(node.id, node.label, offset=offset, limit=window, timeout=timeout)
        future = _deep_reads.submit(store.neighbourhood, node.id, node.label, hops=hops, limit=window,
                                    timeout=timeout)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            future.cancel()  # not started yet (all DEEP_READS busy): it never runs
            raise _too_slow(hops, timeout) from None
    except DatabaseError as e:
        if _timed_out(e):
            raise _too_slow(hops, timeout) from e
        raise


def _entity(store: GraphStore, node: GraphNode, *, hops: int, limit: int, offset: int,
            timeout: float) -> EntityPublic:
    if limit == 0:
        return EntityPublic(node=_node(node), neighbours=[], limit=0, offset=offset, has_more=False)
    if hops == 1:  # the page and one more edge (has_more), cut on the server
        edges = _neighbourhood(store, node, hops=1, window=limit + 1, offset=offset, timeout=timeout)
        page, has_more = edges[:limit], len(edges) > limit
    else:
        window = min(MAX_WINDOW[hops], max(NEIGHBOUR_WINDOW[hops], offset + limit + 1))
        edges = sorted(_neighbourhood(store, node, hops=hops, window=window, offset=0, timeout=timeout),
                       key=_edge_key)
        page, has_more = edges[offset : offset + limit], len(edges) > offset + limit
    return EntityPublic(
        node=_node(node),
        neighbours=[_neighbour(e, node.id) for e in page],
        limit=limit,
        offset=offset,
        has_more=has_more,
    )


def _json(model: EntityPublic | EntitiesPublic) -> Response:
    """The answer, serialised here, in the route's worker thread: a model returned instead would be
    serialised by FastAPI in a second threadpool trip (sync routes), one more hop per read."""
    return Response(model.model_dump_json(), media_type="application/json")


def _check_label(label: str | None) -> str | None:
    if label is not None and label not in schema.NODE_LABELS:
        return f"{label!r} is not a node label; use one of {', '.join(schema.NODE_LABELS)}"
    return None


@router.get("/{entity_id:path}", response_model=EntityPublic,
            responses={404: {"model": ErrorPublic}, 503: {"model": ErrorPublic, "description": "The read ran past "
                                                          "KGFORGE_GRAPH_READ_TIMEOUT_S, or the database is down."}})
def get_entity(
    entity_id: Annotated[str, Path(min_length=1, max_length=512)],
    services: ServicesDep,
    label: Label = None,
    hops: Hops = 1,
    limit: Limit = 50,
    offset: Offset = 0,
):
    """The node with this id (``umls:virus``), its properties, and a page of its neighbours within
    ``hops``; 2-3 hop reads take smaller pages (``limit`` at most 100 / 50, ``offset + limit`` at most
    1,000 / 200: 422 naming the field past it) and answer 503 past ``KGFORGE_GRAPH_READ_TIMEOUT_S``."""
    problem = _check_label(label)
    if problem:
        return invalid("label", problem, where="query")
    bounds = _page_problem(hops, limit, offset)
    if bounds:
        return invalid(bounds[0], bounds[1], where="query")
    if not entity_id.strip():
        return invalid("entity_id", "must not be blank", where="path")
    node = services.graph.get_node(entity_id, label)
    if node is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no node with id {entity_id!r}")
    return _json(_entity(services.graph, node, hops=hops, limit=limit, offset=offset,
                         timeout=services.settings.graph_read_timeout_s))


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
    items = [_entity(store, node, hops=1, limit=neighbours, offset=0, timeout=services.settings.graph_read_timeout_s)
             for node in page]
    return _json(EntitiesPublic(items=items, limit=limit, offset=offset, has_more=len(found) > offset + limit))
