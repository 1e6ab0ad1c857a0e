"""``/v1/jobs``: submit an entity job, follow it, list jobs, cancel one.

A client sees only its own jobs (issue 13): a job records a digest of the key that submitted it
(``Caller.key_id``, never the key), and listing, reading and cancelling filter by the caller's key,
so another key's job is 404. Without keys (development) every caller is the same anonymous client
and sees every job.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.responses import JSONResponse

from api.deps import Caller, ServicesDep, WriteAccess, require_api_key, require_read
from api.errors import invalid
from api.schemas import ErrorPublic, JobAccepted, JobCreate, JobPublic, JobsPublic
from kg_builder.errors import InvalidInputError
from kg_builder.jobs import JobNotFoundError, JobStatus
from kg_builder.jobs.checks import check_submission
from kg_builder.models.saved import ModelNotTrainedError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

WRITE_RESPONSES = {
    401: {"model": ErrorPublic, "description": "No API key."},
    403: {"model": ErrorPublic, "description": "API key not accepted."},
    413: {"model": ErrorPublic, "description": "Request body too large."},
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    dependencies=[WriteAccess],
    responses={**WRITE_RESPONSES,
               409: {"model": ErrorPublic, "description": "A model the job needs is not trained (the command)."},
               503: {"model": ErrorPublic, "description": "Broker unreachable."}},
)
def submit_job(job: JobCreate, services: ServicesDep, response: Response,
               who: Annotated[Caller, Depends(require_api_key)]) -> JobAccepted | JSONResponse:
    """Persist the job, then enqueue ``kgforge.run_job(id)``; 202 with the id to follow.

    Entities beyond ``KGFORGE_MAX_ENTITIES_PER_JOB`` are refused with 422 naming ``entities``; an
    unknown ``domain`` or ``options.relations`` with 422 naming the field; a job whose models are not
    trained with 409 naming each ``kgforge train`` command (``kg_builder/jobs/checks.py``). A
    job that cannot be handed to the broker is marked failed (it would otherwise wait forever) and
    the answer is 503: submit it again when ``/readyz`` is green.
    """
    try:
        job.check_limits(services.settings.max_entities_per_job)
        check_submission(services.settings, job, lambda: [(r.name, r.sources) for r in services.graph.relation_pool()])
    except InvalidInputError as e:
        return invalid(e.field, e.reason)
    except ModelNotTrainedError as e:
        return JSONResponse({"detail": str(e)}, status_code=status.HTTP_409_CONFLICT)
    created = services.jobs.create(job, client=who.key_id)
    from workers.app import enqueue_job

    try:
        enqueue_job(services.celery, created.id)
    except Exception as e:
        message = f"could not enqueue the job: broker unreachable ({type(e).__name__}: {e})"
        log.error("job %s: %s", created.id, message)
        services.jobs.fail(created.id, message + "; submit it again")
        return JSONResponse(
            {"detail": message, "id": created.id}, status_code=503, headers={"Retry-After": "5"}
        )
    url = f"/v1/jobs/{created.id}"
    response.headers["Location"] = url
    return JobAccepted(id=created.id, status=created.status, url=url)


@router.get("", response_model=JobsPublic)
def list_jobs(
    services: ServicesDep,
    who: Annotated[Caller, Depends(require_read)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
) -> JobsPublic:
    """The caller's jobs, newest first (without per-entity results; ``GET /v1/jobs/{id}`` has them)."""
    return services.jobs.list(limit=limit, offset=offset, status=status_, client=who.key_id)


@router.get("/{job_id}", response_model=JobPublic, responses={404: {"model": ErrorPublic}})
def get_job(job_id: str, services: ServicesDep, who: Annotated[Caller, Depends(require_read)],
            entities: bool = True) -> JobPublic:
    """Status, progress, counts (generated / kept / new / merged), per-entity results and errors
    (404 for another key's job)."""
    job = services.jobs.get(job_id, entities=entities, client=who.key_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id!r}")
    return job


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    dependencies=[WriteAccess],
    responses={
        **WRITE_RESPONSES,
        404: {"model": ErrorPublic},
        409: {"model": ErrorPublic, "description": "The job already finished."},
    },
)
def cancel_job(job_id: str, services: ServicesDep, who: Annotated[Caller, Depends(require_api_key)]) -> JobPublic:
    """Cancel a queued job now, or a running one after its current batch (``cancel_requested``).

    Cancelling a cancelled job is a no-op; a job that succeeded or failed cannot be cancelled (409).
    """
    try:
        job = services.jobs.request_cancel(job_id, client=who.key_id)
    except JobNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id!r}") from None
    if job.status in (JobStatus.succeeded, JobStatus.failed):
        raise HTTPException(status.HTTP_409_CONFLICT, f"job {job_id} already {job.status.value}")
    return job
