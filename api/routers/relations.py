"""``/v1/relations``: the relation pool (every relation type with its original name and description)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ServicesDep
from api.schemas import RelationPublic, RelationsPublic

router = APIRouter(prefix="/v1/relations", tags=["relations"])


@router.get("", response_model=RelationsPublic)
def list_relations(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> RelationsPublic:
    """The relation pool, ordered by type, paged."""
    pool = services.graph.relation_pool()
    items = [RelationPublic(**r.model_dump()) for r in pool[offset : offset + limit]]
    return RelationsPublic(items=items, total=len(pool), limit=limit, offset=offset)
