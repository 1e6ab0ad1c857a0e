"""``/v1/recommendations``: next-item recommendations from a saved sequential recommender.

==========================================  =======================================================
``POST /v1/recommendations``                a ``user_id`` or an item ``history`` (oldest first),
                                            ``k``, ``exclude_seen``, optional ``model``/``version``
``GET  /v1/recommendations/{user_id}?k=``   the same for a user of the model's dataset
==========================================  =======================================================

Every answer names the model (``model``, ``version``, the student type and its knowledge) and lists
the items best first with their scores (the student's dot products; higher is better, comparable
only within one answer). Models are loaded once per API process and answered from precomputed item
vectors (:mod:`recommender.serving`, which documents the choices: default model, user histories,
cold start). Errors:

* no ``user_id`` and no ``history``, ``k`` outside 1..:data:`MAX_K`, a history longer than
  :data:`MAX_HISTORY` or with an item the model does not know: **422** naming the field (for
  unknown items, ``history`` and the items);
* a user the dataset does not know and no ``history`` to start from: **404** naming ``user_id``;
* a named ``model`` (or ``version``) that is not saved: **404** naming it;
* no recommender saved at all (or ``KGFORGE_REC_MODEL`` names a missing one): **409** with the
  ``kgforge rec train`` command;
* the model's dataset is not on this server when a user's history is needed: **503** naming
  ``KGFORGE_DATA_DIR``.

A warm model answers on the event loop (sub-millisecond work); loading runs in a worker thread.
These routes only read: a read key is enough (the router is registered with read access).

Example::

    curl -s localhost:8000/v1/recommendations -H 'content-type: application/json' \\
         -d '{"history": ["12", "40", "7"], "k": 5}'
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.deps import ServicesDep
from api.schemas import ErrorPublic
from recommender.serving import ModelCache, NoRecommenderError, UnknownUserError
from recommender.store import RecommenderNotFoundError, RecommenderStore

router = APIRouter(prefix="/v1/recommendations", tags=["recommendations"])

MAX_K = 100
MAX_HISTORY = 1000
MODEL_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "Unknown user (no history given), or the named model is not saved."},
    409: {"model": ErrorPublic, "description": "No recommender is saved yet (the training command)."},
    503: {"model": ErrorPublic, "description": "The model's dataset (its users) is not on this server."},
}

ItemId = Annotated[str, Field(min_length=1, max_length=200)]


class RecommendationCreate(BaseModel):
    user_id: str | None = Field(None, min_length=1, max_length=200,
                                description="A user of the model's dataset: their stored history is used.")
    history: list[ItemId] | None = Field(
        None, min_length=1, max_length=MAX_HISTORY,
        description="Item ids, oldest first (the model reads the last max_len): the history for a request "
                    "without a user_id, and the cold-start fallback for a user the dataset does not know.")
    k: int = Field(10, ge=1, le=MAX_K, description="How many items.")
    exclude_seen: bool = Field(True, description="Leave the history's items out of the answer.")
    model: str | None = Field(None, min_length=1, max_length=100, pattern=MODEL_NAME_PATTERN,
                              description="A saved recommender (`kgforge rec list`); default: KGFORGE_REC_MODEL "
                                          "or the latest saved one.")
    version: int | None = Field(None, ge=1, description="The model's version; default: its latest.")

    model_config = {"protected_namespaces": ()}


class RecommendedItem(BaseModel):
    item_id: str
    score: float


class RecommendationPublic(BaseModel):
    model: str = Field(description="The saved recommender's name.")
    version: int
    student: str = Field(description="The student type (sasrec, gru4rec).")
    knowledge: str = Field(description="The item knowledge supplement it was trained with (none, text, ...).")
    dataset: str
    user_id: str | None = None
    source: str = Field(description="user: the user's stored history; history: the request's items (cold start "
                                    "for an unknown user).")
    history_length: int = Field(description="Items in the history the answer follows.")
    exclude_seen: bool
    items: list[RecommendedItem] = Field(description="Best first.")


# --- the process's model cache -------------------------------------------------------------------
_made = threading.Lock()


async def get_models(request: Request, services: ServicesDep) -> ModelCache:
    state = request.app.state
    if getattr(state, "recommenders", None) is None:
        with _made:
            if getattr(state, "recommenders", None) is None:
                state.recommenders = ModelCache(RecommenderStore(services.settings), services.settings)
    return state.recommenders


ModelsDep = Annotated[ModelCache, Depends(get_models)]


def _answer(models: ModelCache, *, user_id: str | None, history: list[str] | None, k: int, exclude_seen: bool,
            model: str | None, version: int | None) -> RecommendationPublic:
    try:
        answer = models.recommend(user_id=user_id, history=history, k=k, exclude_seen=exclude_seen, name=model,
                                  version=version)
    except (UnknownUserError, RecommenderNotFoundError) as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(e)) from e
    except NoRecommenderError as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from e
    return RecommendationPublic(
        model=answer.name, version=answer.version, student=answer.model, knowledge=answer.knowledge,
        dataset=answer.dataset, user_id=user_id, source=answer.source, history_length=answer.history_length,
        exclude_seen=exclude_seen,
        items=[RecommendedItem(item_id=i, score=s) for i, s in zip(answer.items, answer.scores)])


# --- routes --------------------------------------------------------------------------------------
async def _run(models: ModelCache, **request: Any) -> RecommendationPublic:
    """On the event loop when the model (and the users it needs) are in memory: one encoding and
    one matrix-vector product (~0.4 ms for the Scientific SASRec), less than a worker-thread round
    trip costs on a busy machine; otherwise (first use: loading) in a worker thread."""
    if models.warm(request["model"], request["version"], users=request["user_id"] is not None):
        return _answer(models, **request)
    return await run_in_threadpool(_answer, models, **request)


@router.post("", response_model=RecommendationPublic, responses=RESPONSES)
async def recommend(body: RecommendationCreate, models: ModelsDep) -> RecommendationPublic:
    """The ``k`` next items for a user of the model's dataset or for an item history."""
    return await _run(models, user_id=body.user_id, history=body.history, k=body.k, exclude_seen=body.exclude_seen,
                      model=body.model, version=body.version)


@router.get("/{user_id}", response_model=RecommendationPublic, responses=RESPONSES)
async def recommend_for_user(
    user_id: Annotated[str, Path(min_length=1, max_length=200, description="A user of the model's dataset.")],
    models: ModelsDep,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    exclude_seen: bool = True,
    model: Annotated[str | None, Query(min_length=1, max_length=100, pattern=MODEL_NAME_PATTERN)] = None,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> RecommendationPublic:
    """The ``k`` next items for a user (their stored history); an unknown user is 404."""
    return await _run(models, user_id=user_id, history=None, k=k, exclude_seen=exclude_seen, model=model,
                      version=version)


__all__ = ["MAX_HISTORY", "MAX_K", "router"]
