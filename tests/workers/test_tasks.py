"""The Celery app and the ``kgforge.run_job`` task, through a real Redis broker and an in-process worker.

``run_job`` itself is tested in tests/kg_builder/jobs; here it is replaced, to check what the task
adds: the explicit name, JSON arguments, retries with backoff for transient errors only, and the
job marked failed with a clear message when the retry budget is spent.
"""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker
from kombu.exceptions import OperationalError

from kg_builder.errors import DatabaseUnavailableError, KGForgeError
from kg_builder.jobs import JobStatus, JobStore, JobSubmission
from kg_builder.pipeline import SourceEntity
from kg_builder.settings import Settings
from workers import tasks
from workers.app import TASK_RUN_JOB, broker_ping, create_celery, enqueue_job

pytestmark = pytest.mark.integration


def test_the_app_is_configured_for_safe_redelivery(tmp_path):
    settings = Settings(home=tmp_path, task_visibility_timeout=120)
    app = create_celery(settings)
    conf = app.conf
    assert conf.task_serializer == "json" and conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == 120
    expected = f"redis+socket://{tmp_path.resolve()}/broker/redis.sock"
    assert conf.broker_url == expected and settings.resolved_broker_url() == expected
    compose = create_celery(Settings(home=tmp_path, broker_url="redis://redis:6379/0"))
    assert (
        compose.conf.broker_url == "redis://redis:6379/0"
        and compose.conf.result_backend == "redis://redis:6379/0"
    )
    task = app.tasks[TASK_RUN_JOB]
    assert task.acks_late is not False and task.autoretry_for == (tasks.RetryableError,)


def test_a_too_long_home_is_refused_with_the_fix(tmp_path):
    settings = Settings(home=tmp_path / ("x" * 120))
    with pytest.raises(KGForgeError, match="KGFORGE_BROKER_URL"):
        settings.resolved_broker_url()


def _wait_terminal(jobs: JobStore, job_id: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get(job_id)
        if job.status.terminal:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {jobs.get(job_id).status} after {timeout} s")


def _job(jobs: JobStore) -> str:
    return jobs.create(JobSubmission(entities=[SourceEntity(name="sheep")], domain="zoo")).id


def test_a_task_sent_by_name_runs_the_job(worker_settings, monkeypatch):
    app = create_celery(worker_settings)
    broker_ping(app)
    jobs = JobStore.from_settings(worker_settings)
    job_id = _job(jobs)
    received = []

    def run_job(job_id, settings, **options):
        received.append((job_id, settings.jobs_db_path))
        jobs.mark_running(job_id)
        jobs.entity_done(job_id, 0, generated=3, kept=1)
        return jobs.finish(job_id)

    monkeypatch.setattr(tasks, "run_job", run_job)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        result = app.send_task(TASK_RUN_JOB, args=[job_id])
        assert result.get(timeout=30) == {
            "id": job_id,
            "status": "succeeded",
            "counts": {"generated": 3, "kept": 1, "new": 0, "merged": 0, "triples_written": 0},
        }
    assert received == [(job_id, worker_settings.jobs_db_path)]


def test_transient_errors_are_retried_then_the_job_fails_with_the_reason(worker_settings, monkeypatch):
    app = create_celery(worker_settings)
    task = app.tasks[TASK_RUN_JOB]
    monkeypatch.setattr(task, "max_retries", 2)
    jobs = JobStore.from_settings(worker_settings)
    job_id = _job(jobs)
    attempts = []

    def run_job(job_id, settings, **options):
        attempts.append(time.monotonic())
        if len(attempts) == 2:
            assert jobs.get(job_id).status is JobStatus.queued  # between attempts: queued, with the error
            assert "retry 1 of 2" in jobs.get(job_id).error
        jobs.mark_running(job_id)
        raise DatabaseUnavailableError("graph database unreachable")

    monkeypatch.setattr(tasks, "run_job", run_job)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        app.send_task(TASK_RUN_JOB, args=[job_id])
        job = _wait_terminal(jobs, job_id)
    assert len(attempts) == 3
    assert job.status is JobStatus.failed
    assert "gave up after 2 retries" in job.error and "graph database unreachable" in job.error


def test_other_errors_are_not_retried(worker_settings, monkeypatch):
    app = create_celery(worker_settings)
    jobs = JobStore.from_settings(worker_settings)
    job_id = _job(jobs)
    attempts = []

    def run_job(job_id, settings, **options):
        attempts.append(job_id)
        jobs.mark_running(job_id)
        raise ValueError("a bug")

    monkeypatch.setattr(tasks, "run_job", run_job)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        app.send_task(TASK_RUN_JOB, args=[job_id])
        job = _wait_terminal(jobs, job_id)
    assert attempts == [job_id]
    assert job.status is JobStatus.failed and job.error == "the job's task failed (ValueError): a bug"


def test_an_unreachable_broker_fails_fast(tmp_path):
    app = create_celery(Settings(home=tmp_path))  # nothing listens on this socket
    start = time.monotonic()
    with pytest.raises(OperationalError):
        broker_ping(app, timeout=2)
    with pytest.raises(OperationalError):
        enqueue_job(app, "x")
    assert time.monotonic() - start < 10
