"""Celery tasks: thin wrappers that delegate to ``kg_builder`` (like Saleor's tasks).

``kgforge.run_job(job_id)`` runs :func:`kg_builder.jobs.run_job`. Transient failures
(``RetryableError``: graph database or LLM unavailable, job database locked) are retried with
exponential backoff (1, 2, 4, ... s, capped at ``KGFORGE_TASK_RETRY_BACKOFF_MAX``) up to
``KGFORGE_TASK_MAX_RETRIES`` times; between attempts the job shows ``queued`` with the error it is
retrying after. When the budget is spent, or on any other failure, :class:`JobTask` marks the job
failed with the reason, so a job never stays ``running`` after its task gave up.

Time limits (issue 9): the task stops at ``KGFORGE_TASK_SOFT_TIME_LIMIT`` seconds (the job fails
naming the limit; done entities stay written) and its process is killed at
``KGFORGE_TASK_TIME_LIMIT``. The task runs the job under a lease owned by ``host:pid:task-id``, so
a second delivery of the same job while this one is alive does nothing (:mod:`kg_builder.jobs.lease`).

``kgforge.train(run_id)`` runs a training run (:func:`kg_builder.jobs.training.run_training`: the
kind's training function with throttled progress, cancellation between batches, the result or the
failure stored on the run). It has the same lease, retry policy and time limits; a run that hits
``KGFORGE_TASK_SOFT_TIME_LIMIT`` fails naming it (give the run a ``max_minutes`` below the limit).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from kg_builder.errors import RetryableError
from kg_builder.jobs import JobStore, run_job
from kg_builder.jobs.lease import make_owner
from kg_builder.jobs.training import TASK_TRAIN, run_training
from kg_builder.jobs.training_store import TrainingStore
from kg_builder.settings import get_settings
from workers.app import TASK_RUN_JOB

log = logging.getLogger(__name__)
_settings = get_settings()


class _RecordingTask(Task):
    """Mirrors a task's retries and failures into the store of what it runs (first argument: its
    id): ``note_retry(id, message)`` and ``fail(id, message)``. Subclasses name the thing and the
    advice their messages give."""

    noun = "job"
    id_kwarg = "job_id"
    resubmit_advice = "Submit it again once the service is back."
    time_limit_advice = "raise the limit"
    failure_subject = "the task"

    def _store(self) -> Any:
        raise NotImplementedError

    def on_retry(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        target = args[0] if args else kwargs.get(self.id_kwarg)
        message = f"retry {self.request.retries + 1} of {self.max_retries} after a transient error: {exc}"
        log.warning("%s %s: %s", self.noun, target, message)
        try:
            self._store().note_retry(target, message)
        except Exception:  # the store itself may be what is unavailable; the retry still happens
            log.exception("%s %s: could not record the retry", self.noun, target)

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        target = args[0] if args else kwargs.get(self.id_kwarg)
        if isinstance(exc, RetryableError):
            message = (f"gave up after {self.request.retries} retries; the last transient error was: {exc}. "
                       f"{self.resubmit_advice}")
        elif isinstance(exc, TimeLimitExceeded):
            message = (f"the {self.noun}'s worker process was killed at the hard time limit "
                       f"(KGFORGE_TASK_TIME_LIMIT={get_settings().task_time_limit} s); {self.time_limit_advice}")
        else:
            message = f"{self.failure_subject} failed ({type(exc).__name__}): {exc}"
        log.error("%s %s: %s", self.noun, target, message)
        try:
            self._store().fail(target, message)
        except Exception:
            log.exception("%s %s: could not record the failure", self.noun, target)


class JobTask(_RecordingTask):
    """Base class of job tasks (first argument: the job id): mirrors retries and failures into the job
    store."""

    noun = "job"
    id_kwarg = "job_id"
    resubmit_advice = ("Submit the job again once the service is back (what its done entities wrote stays "
                       "in the graph, and a new job MERGEs onto it).")
    time_limit_advice = "split the job or raise the limit"
    failure_subject = "the job's task"

    def _jobs(self) -> JobStore:
        return JobStore.from_settings(get_settings())

    def _store(self) -> JobStore:
        return self._jobs()


# Retries and limits of both tasks. No jitter: full jitter may pick a 0 s countdown, and the retry
# could then start before on_retry has marked the job (or run) queued; one job per task makes
# thundering herds unlikely.
_RETRIES_AND_LIMITS: dict[str, Any] = dict(
    bind=True,
    autoretry_for=(RetryableError,),
    retry_backoff=True,
    retry_backoff_max=_settings.task_retry_backoff_max,
    retry_jitter=False,
    max_retries=_settings.task_max_retries,
    soft_time_limit=_settings.task_soft_time_limit,
    time_limit=_settings.task_time_limit,
)


# shared_task: registered on every Celery app (workers.app.app, and apps that tests or the API
# build with create_celery), always under the explicit name the API sends.
@shared_task(name=TASK_RUN_JOB, base=JobTask, **_RETRIES_AND_LIMITS)
def run_job_task(self: JobTask, job_id: str) -> dict[str, Any]:
    """Run job ``job_id``; returns its final status and counts (also kept in the job store)."""
    settings = get_settings()
    try:
        job = run_job(job_id, settings, owner=make_owner(self.request.id), interrupts=(SoftTimeLimitExceeded,))
    except SoftTimeLimitExceeded:
        message = (f"the job ran past its time limit (KGFORGE_TASK_SOFT_TIME_LIMIT={settings.task_soft_time_limit} s) "
                   "and was stopped; what its done entities wrote stays in the graph: split the job or raise the limit")
        log.error("job %s: %s", job_id, message)
        self._jobs().fail(job_id, message)
        job = self._jobs().get(job_id, entities=False)
    return {"id": job.id, "status": job.status.value, "counts": job.counts.model_dump()}


class TrainingTask(_RecordingTask):
    """Base class of the training task (first argument: the run id): mirrors retries and failures
    into the training run."""

    noun = "training run"
    id_kwarg = "run_id"
    resubmit_advice = "Submit the run again once the service is back."
    time_limit_advice = "lower max_minutes or raise the limit"
    failure_subject = "the training task"

    def _runs(self) -> TrainingStore:
        return TrainingStore.from_settings(get_settings())

    def _store(self) -> TrainingStore:
        return self._runs()


@shared_task(name=TASK_TRAIN, base=TrainingTask, **_RETRIES_AND_LIMITS)
def train_task(self: TrainingTask, run_id: str) -> dict[str, Any]:
    """Run training run ``run_id``; returns its final status (the result is kept on the run)."""
    settings = get_settings()
    runs = self._runs()
    try:
        run = run_training(run_id, settings, owner=make_owner(self.request.id), store=runs,
                           interrupts=(SoftTimeLimitExceeded,))
    except SoftTimeLimitExceeded:
        message = (f"the run went past its time limit (KGFORGE_TASK_SOFT_TIME_LIMIT={settings.task_soft_time_limit} s) "
                   "and was stopped before saving; give it a max_minutes below the limit or raise the limit")
        log.error("training run %s: %s", run_id, message)
        runs.fail(run_id, message)
        run = runs.get(run_id)
    return {"id": run.id, "status": run.status.value}


__all__ = ["JobTask", "TrainingTask", "run_job_task", "train_task"]
