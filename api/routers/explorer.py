"""The graph explorer: a page at ``/explorer`` to search, draw and query the graph, in every mode.

Neo4j Browser cannot attach to the embedded ArcadeDB, so kgforge serves its own page; it works the
same against Neo4j (compose). Everything it needs is installed with the package
(``api/static/explorer``, package data): no CDN, no internet at run time.

Open it at ``http://127.0.0.1:8000/explorer``; links reopen a view:

* ``/explorer?q=virus`` (optionally ``&domain=umls``, ``&label=Entity``): nodes named ``virus``
  across Entity, Item, Brand and Category (``GET /v1/entities?name=``: exact name after case,
  punctuation and spacing are folded);
* ``/explorer?node=umls:virus``: the node and its neighbours (``GET /v1/entities/{id}``); a click
  on a node shows its properties and adds its neighbours; edge width, opacity and colour follow
  the edge's ``confidence`` (grey: no confidence, i.e. imported dataset facts);
* ``/explorer?job=<id>``: the triples that job wrote (``GET /v1/explorer/jobs/{id}/edges``); every
  job's status has this link as ``explorer_url``;
* ``/explorer?cypher=<statement>``: the Cypher box filled in and run (``POST /v1/cypher``, read-only).

The side panel shows every property of the selected node or edge, the edge's sources, its evidence
documents (their text on click: ``GET /v1/explorer/documents/{id}``) and the job that wrote it
(its status from ``GET /v1/jobs/{id}``). Filters (relation type, domain, minimum confidence, job)
hide what is drawn without reloading it; edges without a confidence pass the confidence filter.

Library: vis-network 10.1.2 (``vendor/vis-network.min.js``, its standalone UMD build, which
carries its CSS; dual Apache-2.0 / MIT, both licence files beside it), fetched with ``npm pack
vis-network@10.1.2``; only the trailing ``sourceMappingURL`` comment was removed (the map is not
shipped). The Neo4j Visualization Library (``@neo4j-nvl/base`` 1.2.1) was the first choice and was
not taken: its licence allows its use only with Neo4j Aura or Neo4j's commercial products (kgforge's
default database is ArcadeDB, and kgforge is Apache-2.0), and its npm package is an ES module that
imports other packages by bare name (``@neo4j-nvl/layout-workers``, ``@segment/analytics-next``,
an analytics client), not a standalone browser bundle.

Access: the page and its assets hold no data and are served without a key; every read they make
goes through the API routes above, which take the usual read key (``api/deps.py``). When keys are
enforced the page asks for a key once and keeps it in the tab's ``sessionStorage``, sent as
``Authorization: Bearer``. For tests and scripts the page exposes ``window.explorer`` (the node and
edge ids drawn, what is shown after the filters, the selection, a node's position on screen).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel

from api.deps import ServicesDep
from api.errors import invalid
from api.routers.entities import _neighbour, _node
from api.schemas import ErrorPublic, NeighbourPublic, NodePublic
from kg_builder.graphdb import explore, schema

STATIC = Path(__file__).resolve().parent.parent / "static" / "explorer"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml",
               "": "text/plain; charset=utf-8"}
ASSETS = ("explorer.js", "explorer.css", "vendor/vis-network.min.js", "vendor/LICENSE-APACHE-2.0",
          "vendor/LICENSE-MIT")

page_router = APIRouter(tags=["explorer"], include_in_schema=False)
router = APIRouter(prefix="/v1/explorer", tags=["explorer"])


@page_router.get("/explorer", response_class=HTMLResponse)
def explorer_page() -> FileResponse:
    """The explorer page (it reads ``?q=``, ``?node=``, ``?job=`` and ``?cypher=`` itself)."""
    return FileResponse(STATIC / "index.html", media_type=MEDIA_TYPES[".html"],
                        headers={"Cache-Control": "no-cache"})


@page_router.get("/explorer/static/{asset:path}")
def explorer_asset(asset: str) -> FileResponse:
    """One of the page's own files (a fixed list: nothing else under the package is reachable)."""
    if asset not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no explorer asset {asset!r}")
    path = STATIC / asset
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, MEDIA_TYPES[""]),
                        headers={"Cache-Control": "public, max-age=3600"})


# --- reads the page needs beyond /v1/entities --------------------------------------------------------
class NodesPublic(BaseModel):
    items: list[NodePublic]


class JobEdgesPublic(BaseModel):
    job_id: str
    nodes: list[NodePublic]
    edges: list[NeighbourPublic]
    truncated: bool


class DocumentPublic(BaseModel):
    id: str
    domain: str
    text: str
    title: str | None = None
    source: str | None = None
    entity_id: str | None = None
    found_in: str


@router.get("/nodes", response_model=NodesPublic)
def get_nodes(
    services: ServicesDep,
    id: Annotated[list[str], Query(min_length=1, max_length=explore.MAX_NODES, description="Node ids.")],
    label: Annotated[list[str] | None, Query(description="Labels to look under (default: every label).")] = None,
) -> NodesPublic:
    """The nodes with these ids (unknown ids are left out): the names of a neighbourhood's nodes."""
    for one in label or []:
        if one not in schema.NODE_LABELS:
            return invalid("label", f"{one!r} is not a node label; use one of {', '.join(schema.NODE_LABELS)}",
                           where="query")
    return NodesPublic(items=[_node(n) for n in explore.nodes_by_ids(services.graph, id, label)])


@router.get("/jobs/{job_id}/edges", response_model=JobEdgesPublic)
def get_job_edges(
    job_id: str,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=explore.MAX_JOB_EDGES)] = 500,
) -> JobEdgesPublic:
    """The edges this job created (their ``job_id``) with their endpoints; ``truncated`` when more exist."""
    found = explore.job_edges(services.graph, job_id, limit=limit)
    return JobEdgesPublic(job_id=job_id, nodes=[_node(n) for n in found.nodes],
                          edges=[_neighbour(e, e.head) for e in found.edges], truncated=found.truncated)


@router.get("/documents/{doc_id:path}", response_model=DocumentPublic, responses={404: {"model": ErrorPublic}})
def get_document(
    doc_id: str,
    services: ServicesDep,
    domain: Annotated[str | None, Query(max_length=100, description="The corpus's domain (default: the id's "
                                                                   "prefix; needed for posted api: ids).")] = None,
) -> DocumentPublic:
    """The text of an evidence document (an id from an edge's ``evidence``)."""
    found = explore.find_document(services.settings, services.graph, doc_id, domain=domain)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document {doc_id!r} in the corpus, posted documents "
                                                       "or node descriptions of its domain")
    return DocumentPublic(**found.model_dump())
