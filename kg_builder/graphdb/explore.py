"""Reads of the graph explorer that :class:`~kg_builder.graphdb.graph.GraphStore` does not have:
nodes by ids (the names of a neighbourhood's nodes), a job's edges, the text of an evidence document.

* :func:`nodes_by_ids`: one indexed lookup per label (``nodes_by_ids``), labels known or not.

* :func:`job_edges`: the edges a job created (edges carry the ``job_id`` of the job that created
  them; a later job that confirms an edge adds to its ``sources`` and ``evidence`` but keeps that
  ``job_id``). No index covers edge properties, so this is a bounded scan (``limit``).
* :func:`find_document`: an edge's ``evidence`` lists document ids (``umls:doc:virus``,
  ``office:12``, ``api:note-1``). Their text is looked up, in order, in the domain's trained
  retrieval corpus (``KGFORGE_HOME/models/utility-<D>/retriever/corpus``), in the documents posted
  to the domain (``KGFORGE_HOME/documents/<D>/corpus``), and, for an entity-description id
  ``<D>:doc:<native id>``, in the ``description`` of the node ``<D>:<native id>`` (the same text
  the corpus was built from, available before any model is trained). The domain is the id's prefix
  unless given (posted ``api:`` ids need it). Corpus files are scanned line by line, never loaded whole.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

import cypher
from kg_builder.errors import InvalidInputError
from kg_builder.graphdb import schema
from kg_builder.graphdb.graph import GraphEdge, GraphNode, GraphStore
from kg_builder.retrieval.corpus import DOCUMENTS_FILE
from kg_builder.retrieval.documents import CORPUS_DIR, posted_documents_dir
from kg_builder.settings import Settings

MAX_JOB_EDGES = 5000
MAX_NODES = 1000


def nodes_by_ids(store: GraphStore, ids: list[str], labels: list[str] | None = None) -> list[GraphNode]:
    """The nodes with these ids (at most 1000), looked up under ``labels`` (default: every label)."""
    wanted = list(dict.fromkeys(i for i in ids if isinstance(i, str) and i))
    if len(wanted) > MAX_NODES:
        raise InvalidInputError("id", f"at most {MAX_NODES} ids per request")
    found: dict[str, GraphNode] = {}
    for label in dict.fromkeys(labels or schema.NODE_LABELS):
        todo = [i for i in wanted if i not in found]
        if not todo:
            break
        for row in store._query(cypher.render("nodes_by_ids", label=schema.node_label(label)), ids=todo):
            found[row["props"]["id"]] = GraphNode(label=label, id=row["props"]["id"], properties=row["props"])
    return [found[i] for i in wanted if i in found]


class JobEdges(BaseModel):
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    truncated: bool


def job_edges(store: GraphStore, job_id: str, *, limit: int = 500) -> JobEdges:
    """The edges job ``job_id`` created (at most ``limit``, 1-5000) and their endpoints."""
    if not isinstance(job_id, str) or not job_id.strip() or len(job_id) > 200:
        raise InvalidInputError("job", "must be a job id (1-200 characters)")
    if not isinstance(limit, int) or not 1 <= limit <= MAX_JOB_EDGES:
        raise InvalidInputError("limit", f"must be an integer from 1 to {MAX_JOB_EDGES}")
    rows = store._query(cypher.render("edges_by_job"), job_id=job_id, limit=limit + 1)
    nodes: dict[str, GraphNode] = {}
    edges = []
    for row in rows[:limit]:
        ends = []
        for end in ("head", "tail"):
            props, labels = row[end], row[f"{end}_labels"] or [None]
            node_id = props.get("id") or "?"
            nodes.setdefault(node_id, GraphNode(label=labels[0] or "?", id=node_id, properties=props))
            ends.append((node_id, labels[0]))
        edges.append(GraphEdge(head=ends[0][0], head_label=ends[0][1], type=row["type"], tail=ends[1][0],
                               tail_label=ends[1][1], properties=row["props"]))
    return JobEdges(nodes=list(nodes.values()), edges=edges, truncated=len(rows) > limit)


class FoundDocument(BaseModel):
    id: str
    domain: str
    text: str
    title: str | None = None
    source: str | None = None
    entity_id: str | None = None
    found_in: str  # "corpus", "posted" or "node description"


def _scan(path: Path, doc_id: str) -> dict | None:
    """The JSON line of ``doc_id`` in a corpus file (``Corpus.save`` writes ``{"id": ...`` first)."""
    if not path.is_file():
        return None
    prefix = '{"id":' + json.dumps(doc_id)
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(prefix):
                record = json.loads(line)
                if record.get("id") == doc_id:
                    return record
    return None


def find_document(settings: Settings, store: GraphStore | None, doc_id: str, *,
                  domain: str | None = None) -> FoundDocument | None:
    """The text of evidence document ``doc_id`` (see the module docstring), or None when unknown."""
    if not isinstance(doc_id, str) or not doc_id.strip() or len(doc_id) > 512:
        raise InvalidInputError("id", "must be a document id (1-512 characters)")
    domain = domain or doc_id.split(":", 1)[0]
    try:
        posted = posted_documents_dir(settings, domain) / CORPUS_DIR / DOCUMENTS_FILE
    except InvalidInputError:
        raise InvalidInputError("domain", f"{domain!r} is not a domain name; pass ?domain=") from None
    from kg_builder.retrieval.saved_utility import RETRIEVER_DIR, utility_model_dir

    places = (("corpus", utility_model_dir(settings, domain) / RETRIEVER_DIR / CORPUS_DIR / DOCUMENTS_FILE),
              ("posted", posted))
    for found_in, path in places:
        record = _scan(path, doc_id)
        if record is not None:
            return FoundDocument(domain=domain, found_in=found_in, **{k: record.get(k) for k in
                                                                      ("id", "text", "title", "source", "entity_id")})
    prefix = f"{domain}:doc:"
    if store is not None and doc_id.startswith(prefix):
        native = doc_id[len(prefix):]
        node = store.get_node(f"{domain}:{native}")
        description = node.properties.get("description") if node else None
        if isinstance(description, str) and description.strip():
            return FoundDocument(id=doc_id, domain=domain, text=description, title=node.properties.get("name"),
                                 source=domain, entity_id=native, found_in="node description")
    return None


__all__ = ["FoundDocument", "JobEdges", "find_document", "job_edges", "nodes_by_ids"]
