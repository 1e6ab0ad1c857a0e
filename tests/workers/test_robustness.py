"""The job path survives more (issue 9), through a real Redis broker, a real in-process worker and the
real runner over the session's graph database with the tiny zoo models:

* a job that never reached the broker is found by the reaper, enqueued again and run to the end;
* the soft time limit stops a job and fails it naming the limit, its done entities kept;
* time limits and the soft shutdown come from the settings.
"""

from __future__ import annotations

import os
import shutil
import time

import kgforge_zoo
import pytest
from celery.contrib.testing.worker import start_worker
from celery.exceptions import SoftTimeLimitExceeded

from kg_builder.jobs import JobStatus, JobStore, JobSubmission
from kg_builder.pipeline import KnowledgePipeline, SourceEntity
from kg_builder.settings import Settings, get_settings
from workers.app import TASK_RUN_JOB, create_celery, enqueue_job
from workers.reaper import broker_job_ids, reap_once

pytestmark = pytest.mark.integration


@pytest.fixture
def job_settings(worker_settings, broker_home, zoo_home, db_settings, store, monkeypatch) -> Settings:
    """The worker's process-wide settings, with the zoo models and the session's graph database."""
    models = broker_home / "models"
    if not models.exists():
        shutil.copytree(zoo_home / "models", models, copy_function=os.link)
    monkeypatch.setenv("KGFORGE_GRAPH_URI", db_settings.bolt_uri)
    monkeypatch.setenv("KGFORGE_GRAPH_PASSWORD", db_settings.resolved_graph_password())
    monkeypatch.setenv("KGFORGE_JOB_BATCH_SIZE", "1")
    monkeypatch.setenv("KGFORGE_JOB_QUEUED_GRACE_S", "1")
    get_settings.cache_clear()
    kgforge_zoo.import_zoo(store)
    yield get_settings()
    get_settings.cache_clear()


def _submit(jobs: JobStore, *names: str) -> str:
    return jobs.create(JobSubmission(entities=[SourceEntity(name=n) for n in names], domain="zoo",
                                     options=kgforge_zoo.OPTIONS)).id


def _wait(jobs: JobStore, job_id: str, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get(job_id, entities=False)
        if job.status.terminal:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {jobs.get(job_id).status} after {timeout} s")


def test_the_app_takes_time_limits_and_the_soft_shutdown_from_settings(tmp_path):
    settings = Settings(home=tmp_path, task_soft_time_limit=100, task_time_limit=130, worker_shutdown_timeout=4)
    conf = create_celery(settings).conf
    assert (conf.task_soft_time_limit, conf.task_time_limit, conf.worker_soft_shutdown_timeout) == (100, 130, 4)
    with pytest.raises(ValueError, match="KGFORGE_TASK_TIME_LIMIT"):
        Settings(home=tmp_path, task_soft_time_limit=100, task_time_limit=100)


def test_a_job_that_never_reached_the_broker_is_re_enqueued_and_runs_once(job_settings, store):
    app = create_celery(job_settings)
    jobs = JobStore.from_settings(job_settings)
    stuck = _submit(jobs, "sheep", "goat")  # persisted, but the API died before enqueueing it
    waiting = _submit(jobs, "cow")
    enqueue_job(app, waiting)  # this one is in the queue
    time.sleep(1.2)  # both older than the grace period
    assert broker_job_ids(app, unacked_max_age_s=60) == {waiting}

    report = reap_once(jobs, app, job_settings)
    assert report.resend == [stuck] and report.requeued == []
    assert broker_job_ids(app, unacked_max_age_s=60) == {waiting, stuck}

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        job = _wait(jobs, stuck)
        assert _wait(jobs, waiting).status is JobStatus.succeeded
    assert job.status is JobStatus.succeeded and job.attempts == 1 and job.progress.done == 2
    assert job.worker_deaths == 0 and job.owner is None
    assert {t.head for t in store.export_triples() if t.job_id == stuck} <= {"zoo:sheep", "zoo:goat"}
    assert broker_job_ids(app, unacked_max_age_s=60) == set()  # every message acknowledged


def test_a_training_run_the_broker_lost_gets_a_new_message_and_a_job_message_does_not_count(job_settings):
    from kg_builder.jobs.training import TASK_TRAIN
    from kg_builder.jobs.training_store import TrainingStore
    from workers.app import enqueue_training
    from workers.reaper import reap_training_once

    app = create_celery(job_settings)
    app.control.purge()
    runs = TrainingStore.from_settings(job_settings)
    lost = runs.create("embed_pretrain", {})  # persisted, never enqueued
    held = runs.create("embed_pretrain", {})
    enqueue_training(app, held.id)
    enqueue_job(app, lost.id)  # a job message with the same id is not the run's message
    time.sleep(1.2)
    assert broker_job_ids(app, unacked_max_age_s=60, task=TASK_TRAIN) == {held.id}
    report = reap_training_once(runs, app, job_settings)
    assert report.resend == [lost.id]
    assert broker_job_ids(app, unacked_max_age_s=60, task=TASK_TRAIN) == {held.id, lost.id}
    app.control.purge()


def test_the_soft_time_limit_fails_the_job_naming_it_and_keeps_done_entities(job_settings, monkeypatch):
    app = create_celery(job_settings)
    jobs = JobStore.from_settings(job_settings)
    job_id = _submit(jobs, "sheep", "goat")
    original = KnowledgePipeline.run

    def run(self, entity):
        # What Celery's soft limit does to a prefork child: raise SoftTimeLimitExceeded wherever it is.
        # (The solo pool of an in-process worker has no timer signal, so it is raised here.)
        if entity.name == "goat":
            raise SoftTimeLimitExceeded()
        return original(self, entity)

    monkeypatch.setattr(KnowledgePipeline, "run", run)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        app.send_task(TASK_RUN_JOB, args=[job_id])
        job = _wait(jobs, job_id)
    assert job.status is JobStatus.failed and job.attempts == 1
    assert f"KGFORGE_TASK_SOFT_TIME_LIMIT={job_settings.task_soft_time_limit} s" in job.error
    assert job.progress.done == 1 and job.owner is None  # sheep's batch stays written
