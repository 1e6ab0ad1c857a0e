"""The job reaper: stuck and orphaned jobs are enqueued again (or failed), never left for the broker's
visibility timeout.

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
from kg_builder.settings import Settings
from workers.app import TASK_RUN_JOB, enqueue_job

log = logging.getLogger(__name__)


def _job_id(message: dict[str, Any]) -> str | None:
    """The job id of a kombu message dict of ``kgforge.run_job`` (protocol 2, JSON body), else None."""
    if (message.get("headers") or {}).get("task") != TASK_RUN_JOB:
        return None
    body = message.get("body")
    try:
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return str(args[0]) if args else None
    except (ValueError, TypeError, IndexError, KeyError):
        return None


def broker_job_ids(app: Any, *, unacked_max_age_s: float) -> set[str]:
    """Job ids of every ``kgforge.run_job`` message the Redis broker holds: queued, or delivered less
    than ``unacked_max_age_s`` ago and not yet acknowledged. Raises when the broker cannot be read."""
    queue = app.conf.task_default_queue
    found: set[str] = set()
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        client = channel.client
        keys = {channel._q_for_pri(queue, pri) for pri in channel.priority_steps}
        for key in keys:
            for raw in client.lrange(key, 0, -1):
                job = _job_id(json.loads(raw))
                if job:
                    found.add(job)
        fresh = set(client.zrangebyscore(channel.unacked_index_key, time.time() - unacked_max_age_s, "+inf"))
        for tag, raw in client.hgetall(channel.unacked_key).items():
            if tag in fresh:
                job = _job_id(json.loads(raw)[0])
                if job:
                    found.add(job)
    return found


def reap_once(jobs: JobStore, app: Any, settings: Settings, *, reason: str | None = None,
              count_deaths: bool = True, enqueue: Callable[[Any, str], None] = enqueue_job) -> ReapReport:
    """One pass: repair stuck and orphaned jobs (module docstring) and send their messages."""
    try:
        known: set[str] | None = broker_job_ids(
            app, unacked_max_age_s=settings.job_queued_grace_s + settings.task_retry_backoff_max)
    except Exception as e:  # an unreachable broker: orphans are still requeued, sent once it is back
        log.warning("reaper: cannot read the broker (%s: %s); queued jobs are left alone", type(e).__name__, e)
        known = None
    report = jobs.reap(broker_jobs=known, queued_grace_s=settings.job_queued_grace_s, reason=reason,
                       count_deaths=count_deaths)
    for job_id in report.resend:
        try:
            enqueue(app, job_id)
        except Exception as e:  # stays queued; the next pass finds it again
            log.warning("reaper: could not enqueue job %s (%s: %s); trying again next pass", job_id,
                        type(e).__name__, e)
    if report.resend or report.failed:
        log.warning("reaper: re-enqueued %s (orphaned: %s), failed %s", report.resend, report.requeued, report.failed)
    return report


class JobReaper:
    """A daemon thread running :func:`reap_once` at start and then every ``interval`` seconds."""

    def __init__(self, jobs: Callable[[], JobStore], app: Callable[[], Any], settings: Settings):
        self._jobs, self._app, self.settings = jobs, app, settings
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


__all__ = ["JobReaper", "broker_job_ids", "reap_once"]
