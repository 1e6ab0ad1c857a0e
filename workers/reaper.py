"""The job reaper: stuck and orphaned jobs (and training runs, by the same rule) are enqueued again
(or failed), never left for the broker's visibility timeout.

What it repairs, every ``KGFORGE_JOB_REAPER_INTERVAL_S`` seconds and once at start-up (the API
runs it in a thread, :class:`JobReaper`):

* a job ``queued`` for longer than ``KGFORGE_JOB_QUEUED_GRACE_S`` whose id is in no message of the
  broker (the API died between persisting and enqueueing it; the broker lost its data): enqueued again;
* a job ``running`` whose worker is gone (its process on this host no longer exists, or its heartbeat
  is older than ``KGFORGE_JOB_LEASE_S``): back to ``queued``, a worker death counted, enqueued again;
  past ``KGFORGE_TASK_MAX_DELIVERIES`` deaths it fails with the reason.

A second message for a job is harmless: the task's lease check (:mod:`kg_builder.jobs.lease`) stops a
second run while the first is alive, and a finished job is never run again.

Which job ids the broker holds is read from the Redis transport's own keys (the queue lists, one per
priority step, and the hash of delivered-but-unacknowledged messages); an unacknowledged message older
than ``unacked_max_age_s`` is not counted (its worker may be dead and the broker would hand it back
only after the visibility timeout).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kg_builder.jobs import JobStore, ReapReport
from kg_builder.jobs.training import TASK_TRAIN
from kg_builder.jobs.training_store import TrainingStore
from kg_builder.settings import Settings
from workers.app import TASK_RUN_JOB, enqueue_job, enqueue_training

log = logging.getLogger(__name__)


def _task_arg(message: dict[str, Any], task: str = TASK_RUN_JOB) -> str | None:
    """The first argument (job or run id) of a kombu message dict of ``task`` (protocol 2, JSON body),
    else None."""
    if (message.get("headers") or {}).get("task") != task:
        return None
    body = message.get("body")
    try:
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return str(args[0]) if args else None
    except (ValueError, TypeError, IndexError, KeyError):
        return None


def broker_job_ids(app: Any, *, unacked_max_age_s: float, task: str = TASK_RUN_JOB) -> set[str]:
    """Ids of every ``task`` message (``kgforge.run_job`` by default, ``kgforge.train`` for training
    runs) the Redis broker holds: queued, or delivered less than ``unacked_max_age_s`` ago and not
    yet acknowledged. Raises when the broker cannot be read."""
    queue = app.conf.task_default_queue
    found: set[str] = set()
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        client = channel.client
        keys = {channel._q_for_pri(queue, pri) for pri in channel.priority_steps}
        for key in keys:
            for raw in client.lrange(key, 0, -1):
                job = _task_arg(json.loads(raw), task)
                if job:
                    found.add(job)
        fresh = set(client.zrangebyscore(channel.unacked_index_key, time.time() - unacked_max_age_s, "+inf"))
        for tag, raw in client.hgetall(channel.unacked_key).items():
            if tag in fresh:
                job = _task_arg(json.loads(raw)[0], task)
                if job:
                    found.add(job)
    return found


def _reap(what: str, task: str, reap: Callable[..., ReapReport], app: Any, settings: Settings, *,
          reason: str | None, count_deaths: bool, enqueue: Callable[[Any, str], None]) -> ReapReport:
    """One pass over one store (``reap``: its ``reap`` method): ask the broker which ``task`` ids it
    holds, repair the store's rows, send the messages they need."""
    try:
        known: set[str] | None = broker_job_ids(
            app, unacked_max_age_s=settings.job_queued_grace_s + settings.task_retry_backoff_max, task=task)
    except Exception as e:  # an unreachable broker: orphans are still requeued, sent once it is back
        log.warning("reaper: cannot read the broker (%s: %s); queued %ss are left alone", type(e).__name__, e, what)
        known = None
    report = reap(known, queued_grace_s=settings.job_queued_grace_s, reason=reason, count_deaths=count_deaths)
    for row_id in report.resend:
        try:
            enqueue(app, row_id)
        except Exception as e:  # stays queued; the next pass finds it again
            log.warning("reaper: could not enqueue %s %s (%s: %s); trying again next pass", what, row_id,
                        type(e).__name__, e)
    if report.resend or report.failed:
        log.warning("reaper: re-enqueued %ss %s (orphaned: %s), failed %s", what, report.resend, report.requeued,
                    report.failed)
    return report


def reap_once(jobs: JobStore, app: Any, settings: Settings, *, reason: str | None = None,
              count_deaths: bool = True, enqueue: Callable[[Any, str], None] = enqueue_job) -> ReapReport:
    """One pass: repair stuck and orphaned jobs (module docstring) and send their messages."""
    return _reap("job", TASK_RUN_JOB, lambda known, **kw: jobs.reap(broker_jobs=known, **kw), app, settings,
                 reason=reason, count_deaths=count_deaths, enqueue=enqueue)


def reap_training_once(runs: TrainingStore, app: Any, settings: Settings, *, reason: str | None = None,
                       count_deaths: bool = True,
                       enqueue: Callable[[Any, str], None] = enqueue_training) -> ReapReport:
    """One pass over the training runs, by the same rule as the jobs."""
    return _reap("training run", TASK_TRAIN, lambda known, **kw: runs.reap(broker_runs=known, **kw), app, settings,
                 reason=reason, count_deaths=count_deaths, enqueue=enqueue)


class JobReaper:
    """A daemon thread running :func:`reap_once` (and :func:`reap_training_once` when given the
    training store) at start and then every ``interval`` seconds."""

    def __init__(self, jobs: Callable[[], JobStore], app: Callable[[], Any], settings: Settings,
                 training: Callable[[], TrainingStore] | None = None):
        self._jobs, self._app, self.settings, self._training = jobs, app, settings, training
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-reaper", daemon=True)
        self.passes = 0

    def _run(self) -> None:
        interval = self.settings.job_reaper_interval_s
        while not self._stop.is_set():
            try:
                reap_once(self._jobs(), self._app(), self.settings)
            except Exception:
                log.exception("reaper pass failed; trying again in %.0f s", interval)
            if self._training is not None:
                try:
                    reap_training_once(self._training(), self._app(), self.settings)
                except Exception:
                    log.exception("training-run reaper pass failed; trying again in %.0f s", interval)
            self.passes += 1
            if interval <= 0 or self._stop.wait(interval):
                return

    def start(self) -> JobReaper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


__all__ = ["JobReaper", "broker_job_ids", "reap_once", "reap_training_once"]
