"""JobStore: durability across reopening, paging, cancellation, and counting a replayed batch once."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from kg_builder.jobs import (
    BatchCounts,
    EntityOutcome,
    EntityStatus,
    JobNotFoundError,
    JobStatus,
    JobStore,
    JobSubmission,
)
from kg_builder.pipeline import PipelineOptions, SourceEntity
from kg_builder.settings import Settings


def submission(*names: str, domain: str = "zoo") -> JobSubmission:
    return JobSubmission(
        entities=[SourceEntity(name=n) for n in names],
        domain=domain,
        options=PipelineOptions(generators=["graph"], keep_fraction=0.5),
    )


def test_a_job_survives_reopening_the_file(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    first = JobStore(path)
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
    del first

    again = JobStore(path)  # a new process would do exactly this
    job = again.get(job.id)
    assert job.status is JobStatus.running and job.attempts == 1
    assert job.progress.model_dump() == {"total": 3, "done": 1, "failed": 1, "running": 0, "pending": 1}
    assert job.counts.model_dump() == {"generated": 7, "kept": 2, "new": 1, "merged": 3, "triples_written": 2}
    assert [(e.position, e.name) for e in job.errors] == [(1, "goat")] and "name: no" in job.errors[0].error
    assert [e.status for e in job.entities] == [EntityStatus.done, EntityStatus.failed, EntityStatus.pending]
    assert job.options.generators == ["graph"] and job.options.keep_fraction == 0.5
    assert [p for p, _ in again.pending_entities(job.id)] == [2]
    assert again.submission(job.id).entities[2].name == "llama"
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_jobs_store_lives_under_home_by_default(tmp_path):
    settings = Settings(home=tmp_path)
    assert JobStore.from_settings(settings).path == tmp_path.resolve() / "jobs.sqlite3"
    assert (
        Settings(home=tmp_path, jobs_db=tmp_path / "x" / "j.db").jobs_db_path
        == tmp_path.resolve() / "x" / "j.db"
    )


def test_a_replayed_batch_is_counted_once(tmp_path):
    jobs = JobStore(tmp_path / "jobs.sqlite3")
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


def test_paging_is_newest_first_and_counts_everything(tmp_path):
    jobs = JobStore(tmp_path / "jobs.sqlite3")
    ids = [jobs.create(submission(f"e{i}")).id for i in range(7)]
    jobs.request_cancel(ids[0])
    page = jobs.list(limit=3, offset=0)
    assert page.total == 7 and [j.id for j in page.items] == ids[::-1][:3]
    assert [j.id for j in jobs.list(limit=3, offset=6).items] == [ids[0]]
    assert jobs.list(limit=3, offset=7).items == []
    assert [j.id for j in jobs.list(status=JobStatus.cancelled).items] == [ids[0]]
    assert all(j.entities is None for j in page.items)
    assert jobs.status_counts()[JobStatus.queued] == 6


def test_cancel_queued_at_once_running_between_batches_finished_never(tmp_path):
    jobs = JobStore(tmp_path / "jobs.sqlite3")
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


def test_cancel_requested_while_queued_for_retry_stops_the_next_attempt(tmp_path):
    jobs = JobStore(tmp_path / "jobs.sqlite3")
    job = jobs.create(submission("a"))
    jobs.mark_running(job.id)
    jobs.note_retry(job.id, "retry 1 of 5 after a transient error: db down")
    assert jobs.get(job.id).status is JobStatus.queued and "db down" in jobs.get(job.id).error
    jobs.request_cancel(job.id)
    assert jobs.mark_running(job.id).status is JobStatus.cancelled


def test_a_job_whose_every_entity_failed_fails(tmp_path):
    jobs = JobStore(tmp_path / "jobs.sqlite3")
    job = jobs.create(submission("a", "b"))
    jobs.mark_running(job.id)
    jobs.entity_failed(job.id, 0, "invalid input: x: y")
    jobs.entity_failed(job.id, 1, "invalid input: z")
    finished = jobs.finish(job.id)
    assert finished.status is JobStatus.failed and "every entity failed (2)" in finished.error
    assert finished.finished_at is not None


def test_unknown_job(tmp_path):
    jobs = JobStore(tmp_path / "jobs.sqlite3")
    assert jobs.get("nope") is None
    with pytest.raises(JobNotFoundError):
        jobs.request_cancel("nope")
    with pytest.raises(JobNotFoundError):
        jobs.mark_running("nope")


def test_concurrent_writers_from_threads(tmp_path):
    jobs = JobStore(tmp_path / "jobs.sqlite3")
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
