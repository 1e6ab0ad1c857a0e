"""``/v1/training``: submit a training run (GNN pretraining, fine-tuning, a recommender student),
follow its progress, list runs, cancel one.

A run is ``{"kind": ..., "params": {...}}``: the kinds and their parameters are registered in
:mod:`kg_builder.jobs.training` (``embed_pretrain``, ``embed_finetune``, ``rec_train``). Parameters
are checked before anything is stored: an unknown kind or a bad parameter is 422 naming the field
(``kind``, ``params.max_batches``, ...), a pretrained model that does not exist is 409 naming
``kgforge embed pretrain``. An accepted run is stored queued and sent to the workers as
``kgforge.train(id)``; the answer is 202 with the run and its URL. The worker writes the run's
``progress`` (stage, batch, total_batches, loss, validation, elapsed_s) at most every ~2 s and its
``result`` (what the training saved, with its metrics) or ``error`` at the end.

Ownership is that of ``/v1/jobs``: a run records the submitting key's fingerprint
(``Caller.key_id``), and reading, listing and cancelling filter by it, so another key's run is 404.
Writes need a write key (``WriteAccess``); reads the router-level read check of ``api/main.py``.
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Caller, ServicesDep, WriteAccess, require_api_key, require_read
from api.errors import invalid
from api.schemas import ErrorPublic
from kg_builder.errors import InvalidInputError
from kg_builder.jobs import JobStatus
from kg_builder.jobs.training import KINDS, validate_submission
from kg_builder.jobs.training_store import TrainingRun, TrainingRunNotFoundError, TrainingRunPage, TrainingStore
from kg_builder.models.saved import ModelNotTrainedError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/training", tags=["training"])
_STORE_LOCK = threading.Lock()

WRITE_RESPONSES = {
    401: {"model": ErrorPublic, "description": "No API key."},
    403: {"model": ErrorPublic, "description": "API key not accepted."},
    413: {"model": ErrorPublic, "description": "Request body too large."},
}


class TrainingCreate(BaseModel):
    """``POST /v1/training``."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(max_length=64, description="A registered training kind: embed_pretrain, embed_finetune, "
                                                 "rec_train.")
    params: dict[str, Any] = Field(default_factory=dict, description="The kind's parameters (see the README); "
                                                                     "unknown ones are refused.")


class TrainingAccepted(TrainingRun):
    url: str = Field(description="Where to follow the run.")


def app_training_store(app: Any) -> TrainingStore:
    """``app``'s training-run store, opened on first use (tests may set ``app.state.training_store``);
    the routes and the reaper share it."""
    store = getattr(app.state, "training_store", None)
    if store is None:
        with _STORE_LOCK:
            store = getattr(app.state, "training_store", None)
            if store is None:
                store = TrainingStore.from_settings(app.state.services.settings)
                app.state.training_store = store
    return store


def training_store(request: Request) -> TrainingStore:
    """The request's app's training-run store (:func:`app_training_store`)."""
    return app_training_store(request.app)


StoreDep = Annotated[TrainingStore, Depends(training_store)]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TrainingAccepted,
    dependencies=[WriteAccess],
    responses={**WRITE_RESPONSES,
               409: {"model": ErrorPublic, "description": "A model the run starts from is not trained (the command)."},
               503: {"model": ErrorPublic, "description": "Broker unreachable."}},
)
def submit_training(body: TrainingCreate, services: ServicesDep, runs: StoreDep, response: Response,
                    who: Annotated[Caller, Depends(require_api_key)]) -> TrainingAccepted | JSONResponse:
    """Validate the parameters, persist the run, enqueue ``kgforge.train(id)``; 202 with the run."""
    try:
        kind, params = validate_submission(services.settings, body.kind, body.params)
    except InvalidInputError as e:
        return invalid(e.field, e.reason)
    except ModelNotTrainedError as e:
        return JSONResponse({"detail": str(e)}, status_code=status.HTTP_409_CONFLICT)
    run = runs.create(kind.name, params.model_dump(mode="json"), client=who.key_id)
    from workers.app import enqueue_training

    try:
        enqueue_training(services.celery, run.id)
    except Exception as e:
        message = f"could not enqueue the training run: broker unreachable ({type(e).__name__}: {e})"
        log.error("training run %s: %s", run.id, message)
        runs.note_enqueue_error(run.id, message + "; submit it again")
        return JSONResponse({"detail": message, "id": run.id}, status_code=503, headers={"Retry-After": "5"})
    url = f"/v1/training/{run.id}"
    response.headers["Location"] = url
    return TrainingAccepted(**run.model_dump(), url=url)


@router.get("", response_model=TrainingRunPage)
def list_training(
    runs: StoreDep,
    who: Annotated[Caller, Depends(require_read)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
) -> TrainingRunPage | JSONResponse:
    """The caller's training runs, newest first (``status`` and ``kind`` filter them)."""
    if kind is not None and kind not in KINDS:
        return invalid("kind", f"unknown training kind {kind!r}; choose one of: {', '.join(sorted(KINDS))}",
                       where="query")
    return runs.list(limit=limit, offset=offset, status=status_, kind=kind, client=who.key_id)


@router.get("/{run_id}", response_model=TrainingRun, responses={404: {"model": ErrorPublic}})
def get_training(run_id: str, runs: StoreDep, who: Annotated[Caller, Depends(require_read)]) -> TrainingRun:
    """Status, progress (stage, batch, total_batches, loss, validation, elapsed_s), result or error
    (404 for another key's run)."""
    run = runs.get(run_id, client=who.key_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no training run {run_id!r}")
    return run


@router.delete(
    "/{run_id}",
    response_model=TrainingRun,
    dependencies=[WriteAccess],
    responses={**WRITE_RESPONSES, 404: {"model": ErrorPublic},
               409: {"model": ErrorPublic, "description": "The run already finished."}},
)
def cancel_training(run_id: str, runs: StoreDep, who: Annotated[Caller, Depends(require_api_key)]) -> TrainingRun:
    """Cancel a queued run now, or a running one at its next progress write (``cancel_requested``;
    between two batches, nothing saved). Cancelling a cancelled run is a no-op; a run that succeeded
    or failed cannot be cancelled (409)."""
    try:
        run = runs.request_cancel(run_id, client=who.key_id)
    except TrainingRunNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no training run {run_id!r}") from None
    if run.status in (JobStatus.succeeded, JobStatus.failed):
        raise HTTPException(status.HTTP_409_CONFLICT, f"training run {run_id} already {run.status.value}")
    return run
