"""JobStore: durability across reopening, paging, cancellation, counting a replayed batch once, and
each client seeing only its jobs; on SQLite and on PostgreSQL (``jobs_target`` in conftest.py)."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from pydantic import ValidationError

from kg_builder.jobs import (
    BatchCounts,
    EntityOutcome,
    EntityStatus,
    JobNotFoundError,
    JobStatus,
    JobStore,
    JobSubmission,
)
from kg_builder.jobs.sql import redact
from kg_builder.pipeline import PipelineOptions, SourceEntity
from kg_builder.settings import Settings


def submission(*names: str, domain: str = "zoo") -> JobSubmission:
    return JobSubmission(
        entities=[SourceEntity(name=n) for n in names],
        domain=domain,
        options=PipelineOptions(generators=["graph"], keep_fraction=0.5),
    )


def test_a_job_survives_reopening_the_store(jobs_target):
    first = JobStore(jobs_target)
    job = first.create(submission("sheep", "goat", "llama"))
    first.mark_running(job.id)
    first.record_batch(
        job.id,
        [
            EntityOutcome(0, node_id="zoo:sheep", generated=7, kept=2),
            EntityOutcome(1, error="invalid input: name: no"),
        ],
        BatchCounts(new=1, merged=3, triples_written=2),
    )
    first.close()
    del first

    again = JobStore(jobs_target)  # a new process would do exactly this
    job = again.get(job.id)
    assert job.status is JobStatus.running and job.attempts == 1
    assert job.progress.model_dump() == {"total": 3, "done": 1, "failed": 1, "running": 0, "pending": 1}
    assert job.counts.model_dump() == {"generated": 7, "kept": 2, "new": 1, "merged": 3, "triples_written": 2}
    assert [(e.position, e.name) for e in job.errors] == [(1, "goat")] and "name: no" in job.errors[0].error
    assert [e.status for e in job.entities] == [EntityStatus.done, EntityStatus.failed, EntityStatus.pending]
    assert job.options.generators == ["graph"] and job.options.keep_fraction == 0.5
    assert [p for p, _ in again.pending_entities(job.id)] == [2]
    assert again.submission(job.id).entities[2].name == "llama"
    if again.backend == "sqlite":
        mode = sqlite3.connect(jobs_target).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_jobs_store_lives_under_home_by_default(tmp_path):
    settings = Settings(home=tmp_path)
    assert JobStore.from_settings(settings).path == tmp_path.resolve() / "jobs.sqlite3"
    assert (
        Settings(home=tmp_path, jobs_db=tmp_path / "x" / "j.db").jobs_db_path
        == tmp_path.resolve() / "x" / "j.db"
    )
    assert JobStore.from_settings(settings).backend == "sqlite"


def test_a_postgres_url_in_the_settings_selects_postgres_and_hides_the_password(postgres_url, tmp_path):
    store = JobStore.from_settings(Settings(home=tmp_path, jobs_url=postgres_url))
    assert store.backend == "postgresql" and not (tmp_path / "jobs.sqlite3").exists()
    assert redact("postgresql://kg:s3cret@db:5432/kg") == "postgresql://kg:***@db:5432/kg"
    assert Settings(home=tmp_path, jobs_url="").jobs_url is None
    with pytest.raises(ValidationError, match="jobs_url"):
        Settings(home=tmp_path, jobs_url="mysql://db/kg")


def test_an_unreachable_postgres_is_a_retryable_error_without_the_password(monkeypatch):
    from kg_builder.jobs import JobStoreUnavailableError, sql

    url = "postgresql://kg:s3cret@127.0.0.1:1/kg?connect_timeout=1"
    monkeypatch.setattr(sql, "BUSY_TIMEOUT_S", 2.0)
    try:
        with pytest.raises(JobStoreUnavailableError, match="KGFORGE_JOBS_URL") as caught:
            JobStore(url)
    finally:
        sql.close_pool(url)
    assert "s3cret" not in str(caught.value)


def test_a_replayed_batch_is_counted_once(jobs_target):
    jobs = JobStore(jobs_target)
    job = jobs.create(submission("a", "b"))
    batch = [EntityOutcome(0, generated=4, kept=1), EntityOutcome(1, generated=2, kept=1)]
    assert jobs.record_batch(job.id, batch, BatchCounts(new=1, merged=1, triples_written=2)) == 2
    assert jobs.record_batch(job.id, batch, BatchCounts(new=0, merged=2, triples_written=2)) == 0
    counts = jobs.get(job.id).counts
    assert (counts.generated, counts.kept, counts.new, counts.merged, counts.triples_written) == (
        6,
        2,
        1,
        1,
        2,
    )


def test_paging_is_newest_first_and_counts_everything(jobs_target):
    jobs = JobStore(jobs_target)
    ids = [jobs.create(submission(f"e{i}")).id for i in range(7)]
    jobs.request_cancel(ids[0])
    page = jobs.list(limit=3, offset=0)
    assert page.total == 7 and [j.id for j in page.items] == ids[::-1][:3]
    assert [j.id for j in jobs.list(limit=3, offset=6).items] == [ids[0]]
    assert jobs.list(limit=3, offset=7).items == []
    assert [j.id for j in jobs.list(status=JobStatus.cancelled).items] == [ids[0]]
    assert all(j.entities is None for j in page.items)
    assert jobs.status_counts()[JobStatus.queued] == 6


def test_cancel_queued_at_once_running_between_batches_finished_never(jobs_target):
    jobs = JobStore(jobs_target)
    queued = jobs.create(submission("a"))
    assert jobs.request_cancel(queued.id).status is JobStatus.cancelled
    assert jobs.mark_running(queued.id).status is JobStatus.cancelled  # a late task does not revive it

    running = jobs.create(submission("a"))
    jobs.mark_running(running.id)
    job = jobs.request_cancel(running.id)
    assert job.status is JobStatus.running and job.cancel_requested and jobs.is_cancelled(running.id)
    assert jobs.cancel(running.id) and jobs.get(running.id).status is JobStatus.cancelled

    done = jobs.create(submission("a"))
    jobs.mark_running(done.id)
    jobs.entity_done(done.id, 0, generated=1, kept=1)
    assert jobs.finish(done.id).status is JobStatus.succeeded
    assert jobs.request_cancel(done.id).status is JobStatus.succeeded
    assert not jobs.cancel(done.id) and not jobs.fail(done.id, "late")
    assert jobs.get(done.id).finished_at is not None


def test_cancel_requested_while_queued_for_retry_stops_the_next_attempt(jobs_target):
    jobs = JobStore(jobs_target)
    job = jobs.create(submission("a"))
    jobs.mark_running(job.id)
    jobs.note_retry(job.id, "retry 1 of 5 after a transient error: db down")
    assert jobs.get(job.id).status is JobStatus.queued and "db down" in jobs.get(job.id).error
    jobs.request_cancel(job.id)
    assert jobs.mark_running(job.id).status is JobStatus.cancelled


def test_a_job_whose_every_entity_failed_fails(jobs_target):
    jobs = JobStore(jobs_target)
    job = jobs.create(submission("a", "b"))
    jobs.mark_running(job.id)
    jobs.entity_failed(job.id, 0, "invalid input: x: y")
    jobs.entity_failed(job.id, 1, "invalid input: z")
    finished = jobs.finish(job.id)
    assert finished.status is JobStatus.failed and "every entity failed (2)" in finished.error
    assert finished.finished_at is not None


def test_unknown_job(jobs_target):
    jobs = JobStore(jobs_target)
    assert jobs.get("nope") is None
    with pytest.raises(JobNotFoundError):
        jobs.request_cancel("nope")
    with pytest.raises(JobNotFoundError):
        jobs.mark_running("nope")


def test_concurrent_writers_from_threads(jobs_target):
    jobs = JobStore(jobs_target)
    job = jobs.create(submission(*[f"e{i}" for i in range(40)]))
    errors = []

    def worker(start: int) -> None:
        try:
            for p in range(start, 40, 4):
                jobs.entity_done(job.id, p, generated=1, kept=1)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert jobs.get(job.id).progress.done == 40 and jobs.get(job.id).counts.generated == 40


def test_concurrent_claims_of_one_job_have_one_winner(jobs_target):
    jobs = JobStore(jobs_target)
    job = jobs.create(submission("a"))
    barrier = threading.Barrier(6)
    claims = []

    def claim(i: int) -> None:
        barrier.wait()
        claims.append(jobs.claim(job.id, f"host-{i}.example:1:task"))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(c.claimed for c in claims) == 1
    assert jobs.get(job.id).attempts == 1 and jobs.get(job.id).worker_deaths == 0


def test_a_batch_recorded_twice_at_once_is_counted_once(jobs_target):
    jobs = JobStore(jobs_target)
    job = jobs.create(submission("a", "b"))
    batch = [EntityOutcome(0, generated=3, kept=1), EntityOutcome(1, generated=2, kept=1)]
    barrier = threading.Barrier(4)
    changed = []

    def record() -> None:
        barrier.wait()
        changed.append(jobs.record_batch(job.id, batch, BatchCounts(new=1, merged=1, triples_written=2)))

    threads = [threading.Thread(target=record) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(changed) == [0, 0, 0, 2]
    counts = jobs.get(job.id).counts
    assert (counts.generated, counts.new, counts.merged, counts.triples_written) == (5, 1, 1, 2)


def test_each_client_sees_and_cancels_only_its_own_jobs(jobs_target):
    jobs = JobStore(jobs_target)
    mine = jobs.create(submission("a"), client="fp-a")
    theirs = jobs.create(submission("b"), client="fp-b")
    keyless = jobs.create(submission("c"))
    assert [j.id for j in jobs.list(client="fp-a").items] == [mine.id]
    assert jobs.list(client="fp-a").total == 1
    assert jobs.list(client="fp-a", status=JobStatus.cancelled).total == 0
    assert jobs.list().total == 3  # None: every job (workers, an admin)
    assert jobs.get(theirs.id, client="fp-a") is None and jobs.get(mine.id, client="fp-a").id == mine.id
    assert jobs.get(keyless.id, client="fp-a") is None and jobs.get(keyless.id).id == keyless.id
    with pytest.raises(JobNotFoundError):
        jobs.request_cancel(theirs.id, client="fp-a")
    assert jobs.get(theirs.id).status is JobStatus.queued
    assert jobs.request_cancel(mine.id, client="fp-a").status is JobStatus.cancelled


def test_create_returns_what_get_reads(jobs_target):
    jobs = JobStore(jobs_target)
    created = jobs.create(submission("a", "b"))
    read = jobs.get(created.id)
    assert created.model_dump(exclude={"created_at", "updated_at"}) == read.model_dump(
        exclude={"created_at", "updated_at"})
    assert created.created_at == read.created_at


def _record_in_child(jobs: JobStore, job_id: str, positions: list[int]) -> None:
    for p in positions:
        jobs.entity_done(job_id, p, generated=1, kept=1)


def test_forked_processes_share_the_store_made_before_the_fork(jobs_target):
    # Celery's prefork pool: the store (and, on PostgreSQL, its pool) may exist before the fork;
    # each child must use its own connections, never the parent's sockets.
    import multiprocessing

    jobs = JobStore(jobs_target)
    job = jobs.create(submission(*[f"e{i}" for i in range(12)]))
    assert jobs.get(job.id).progress.pending == 12  # the parent's connections are in use
    fork = multiprocessing.get_context("fork")
    children = [fork.Process(target=_record_in_child, args=(jobs, job.id, list(range(i, 12, 3)))) for i in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [child.exitcode for child in children] == [0, 0, 0]
    assert jobs.get(job.id).progress.done == 12 and jobs.get(job.id).counts.generated == 12
