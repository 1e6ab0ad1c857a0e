"""``/v1/embeddings``: saved embedding sets, their vectors, and nearest-neighbour search over them.

========================================================  ==============================================
``GET  /v1/embeddings``                                   the sets (every saved version's metadata)
``GET  /v1/embeddings/{set}/{node_id}``                   one node's vector
``POST /v1/embeddings/{set}/batch``                       up to :data:`MAX_BATCH` nodes' vectors
``GET  /v1/embeddings/{set}/{node_id}/similar?k=``        the k most similar nodes (the node excluded)
``POST /v1/embeddings/{set}/search``                      the k nearest nodes to a vector or a text
========================================================  ==============================================

Each route takes ``?version=`` (default: the latest). Node ids hold ``:`` (``umls:virus``) and may
hold ``/``, so they are ``path`` parameters. An unknown set, version or node is a 404 naming it; a
batch over :data:`MAX_BATCH` ids is a 422 naming ``node_ids`` (and a body over
``KGFORGE_MAX_BODY_BYTES`` a 413); a vector of the wrong dimension is a 422 naming ``vector``.

Search uses the set's index (:mod:`gnn.index`, ``auto``: exact FAISS up to 20,000 vectors, HNSW
above), built on first use and saved beside the set. Text search encodes the text with the API's
MiniLM encoder and maps it through the set's recorded text projection, or uses it as is when the
set has the encoder's 384 dimensions (meaningful for sets in the encoder's space, such as
text-only embeddings); any other set answers 422 saying why. These routes only read, so they need
no API key, like the other reads.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field

from api.deps import ServicesDep
from api.errors import invalid
from api.schemas import ErrorPublic
from gnn.index import IndexCache, Neighbour
from gnn.store import (
    SET_NAME_PATTERN,
    EmbeddingSetMeta,
    EmbeddingSetNotFoundError,
    EmbeddingStore,
    NodeNotInSetError,
)

router = APIRouter(prefix="/v1/embeddings", tags=["embeddings"])

MAX_BATCH = 1000
MAX_K = 100
MAX_TEXT_CHARS = 2000
TEXT_DIM = 384  # kg_builder.models.encoder.EMBEDDING_DIM (not imported: it would load torch at import)
NOT_FOUND = {404: {"model": ErrorPublic}}

SetName = Annotated[str, Path(min_length=1, max_length=100, description="An embedding set's name.")]
NodeId = Annotated[str, Path(min_length=1, max_length=512, description="A node id, e.g. `umls:virus`.")]
Version = Annotated[int | None, Query(ge=1, description="The set's version; default: the latest.")]
K = Annotated[int, Query(ge=1, le=MAX_K, description="How many neighbours.")]


# --- schemas -------------------------------------------------------------------------------------
EmbeddingSetPublic = EmbeddingSetMeta


class EmbeddingSetsPublic(BaseModel):
    items: list[EmbeddingSetPublic]


class EmbeddingPublic(BaseModel):
    set: str
    version: int
    node_id: str
    vector: list[float]


class NodeVectorPublic(BaseModel):
    node_id: str
    vector: list[float]


class EmbeddingsPublic(BaseModel):
    set: str
    version: int
    dimension: int
    items: list[NodeVectorPublic] = Field(description="The known nodes, in the order asked.")
    missing: list[str] = Field(description="Asked ids the set has no vector for.")


class EmbeddingBatch(BaseModel):
    node_ids: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(
        min_length=1, max_length=MAX_BATCH, description=f"At most {MAX_BATCH} node ids.")


class EmbeddingSearch(BaseModel):
    vector: list[float] | None = Field(None, description="A query vector of the set's dimension.")
    text: str | None = Field(None, min_length=1, max_length=MAX_TEXT_CHARS,
                             description="A query text, encoded by the MiniLM encoder.")
    k: int = Field(10, ge=1, le=MAX_K)


class SimilarPublic(BaseModel):
    node_id: str
    score: float = Field(description="Cosine similarity.")


class NeighboursPublic(BaseModel):
    set: str
    version: int
    index: str = Field(description="exact or hnsw.")
    node_id: str | None = Field(None, description="The node whose neighbours these are (similar).")
    query: str | None = Field(None, description="vector or text (search).")
    items: list[SimilarPublic]


# --- dependencies --------------------------------------------------------------------------------
class EmbeddingService:
    """The store and the index cache of one app (made on first use)."""

    def __init__(self, services: Any):
        self.store = EmbeddingStore(services.settings)
        self.indexes = IndexCache(self.store)


_made = threading.Lock()


def get_embeddings(request: Request, services: ServicesDep) -> EmbeddingService:
    state = request.app.state
    if getattr(state, "embeddings", None) is None:
        with _made:
            if getattr(state, "embeddings", None) is None:
                state.embeddings = EmbeddingService(services)
    return state.embeddings


EmbeddingsDep = Annotated[EmbeddingService, Depends(get_embeddings)]


def _not_found(error: LookupError) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, str(error))


def _bad_name(name: str):
    import re

    if not re.match(SET_NAME_PATTERN, name):
        return invalid("set", f"{name!r} is not an embedding set name (letters, digits, '_', '.', '-')", where="path")
    return None


def _neighbours(items: list[Neighbour]) -> list[SimilarPublic]:
    return [SimilarPublic(node_id=n.node_id, score=n.score) for n in items]


# --- routes --------------------------------------------------------------------------------------
@router.get("", response_model=EmbeddingSetsPublic)
def list_sets(embeddings: EmbeddingsDep):
    """Every saved version of every embedding set: name, model, domain, version, created, metrics,
    dimension, count, git hash and training config."""
    return EmbeddingSetsPublic(items=embeddings.store.list())


@router.post("/{set_name}/batch", response_model=EmbeddingsPublic, responses=NOT_FOUND)
def get_vectors(set_name: SetName, body: EmbeddingBatch, embeddings: EmbeddingsDep, version: Version = None):
    """The vectors of up to ``MAX_BATCH`` nodes; ids the set lacks are listed under ``missing``."""
    if (bad := _bad_name(set_name)) is not None:
        return bad
    try:
        embedding_set = embeddings.store.load(set_name, version)
    except EmbeddingSetNotFoundError as e:
        raise _not_found(e) from e
    items, missing = [], []
    for node in body.node_ids:
        try:
            row = embedding_set.row(node)
        except NodeNotInSetError:
            missing.append(node)
            continue
        items.append(NodeVectorPublic(node_id=node, vector=embedding_set.vectors[row].tolist()))
    return EmbeddingsPublic(set=embedding_set.name, version=embedding_set.version,
                            dimension=embedding_set.dimension, items=items, missing=missing)


@router.post("/{set_name}/search", response_model=NeighboursPublic, responses=NOT_FOUND)
def search(set_name: SetName, body: EmbeddingSearch, embeddings: EmbeddingsDep, services: ServicesDep,
           version: Version = None):
    """The ``k`` nodes nearest (cosine) to ``vector``, or to ``text`` encoded by the MiniLM encoder.
    Give exactly one of the two."""
    if (bad := _bad_name(set_name)) is not None:
        return bad
    if (body.vector is None) == (body.text is None):
        return invalid("vector", "give exactly one of `vector` and `text`")
    try:
        opened = embeddings.indexes.get(set_name, version)
    except EmbeddingSetNotFoundError as e:
        raise _not_found(e) from e
    embedding_set = opened.embedding_set
    if body.vector is not None:
        if len(body.vector) != embedding_set.dimension:
            return invalid("vector", f"has {len(body.vector)} numbers; set {set_name!r} has dimension "
                                     f"{embedding_set.dimension}")
        query = np.asarray(body.vector, dtype=np.float32)
    else:
        if not body.text.strip():
            return invalid("text", "must not be blank")
        if embedding_set.text_projection is None and embedding_set.dimension != TEXT_DIM:
            return invalid("text", f"set {set_name!r} has dimension {embedding_set.dimension} and records no text "
                                   f"projection, so a text (encoded to {TEXT_DIM} dimensions) cannot be compared "
                                   "with its vectors; search it by `vector`")
        encoded = services.encoder.encode([body.text])[0]
        projection = embedding_set.text_projection
        query = encoded @ projection if projection is not None else encoded
    hits = opened.search(query, body.k)[0]
    return NeighboursPublic(set=embedding_set.name, version=embedding_set.version, index=opened.index.config.kind,
                            query="vector" if body.vector is not None else "text", items=_neighbours(hits))


@router.get("/{set_name}/{node_id:path}/similar", response_model=NeighboursPublic, responses=NOT_FOUND)
def similar(set_name: SetName, node_id: NodeId, embeddings: EmbeddingsDep, k: K = 10, version: Version = None):
    """The ``k`` nodes most similar (cosine) to ``node_id`` in the set, the node itself excluded."""
    if (bad := _bad_name(set_name)) is not None:
        return bad
    try:
        opened = embeddings.indexes.get(set_name, version)
        hits = opened.similar(node_id, k)
    except (EmbeddingSetNotFoundError, NodeNotInSetError) as e:
        raise _not_found(e) from e
    return NeighboursPublic(set=opened.embedding_set.name, version=opened.embedding_set.version,
                            index=opened.index.config.kind, node_id=node_id, items=_neighbours(hits))


@router.get("/{set_name}/{node_id:path}", response_model=EmbeddingPublic, responses=NOT_FOUND)
def get_vector(set_name: SetName, node_id: NodeId, embeddings: EmbeddingsDep, version: Version = None):
    """The vector of ``node_id`` in the set."""
    if (bad := _bad_name(set_name)) is not None:
        return bad
    try:
        embedding_set = embeddings.store.load(set_name, version)
        vector = embedding_set.vector(node_id)
    except (EmbeddingSetNotFoundError, NodeNotInSetError) as e:
        raise _not_found(e) from e
    return EmbeddingPublic(set=embedding_set.name, version=embedding_set.version, node_id=node_id,
                           vector=vector.tolist())


__all__ = ["MAX_BATCH", "router"]
