"""TrainingStore on both backends (``jobs_target``: SQLite and PostgreSQL): a run's round trip
(create, claim, progress, result), ownership by client, cancellation, leases against a second
delivery, failure with the reason, and a store sharing the database file with the entity jobs."""

from __future__ import annotations

import math

import pytest

from kg_builder.jobs import JobStatus, JobStore, JobSubmission
from kg_builder.jobs.training_store import TrainingProgress, TrainingRunNotFoundError, TrainingStore
from kg_builder.pipeline import SourceEntity


def test_round_trip_from_queued_to_succeeded(jobs_target):
    runs = TrainingStore(jobs_target)
    run = runs.create("embed_finetune", {"dataset": "amazon18_scientific", "max_batches": 20}, client="c1")
    assert run.status is JobStatus.queued and run.params["max_batches"] == 20 and run.progress.batch is None

    claim = runs.claim(run.id, "host:1:task-a")
    assert claim.claimed and claim.run.status is JobStatus.running and claim.run.attempts == 1
    ack = runs.update_progress(run.id, "host:1:task-a", TrainingProgress(stage="finetune", batch=7, total_batches=20,
                                                                        loss=1.25, validation={"ndcg@10": 0.031},
                                                                        elapsed_s=3.5))
    assert ack.held and not ack.cancel_requested
    shown = runs.get(run.id)
    assert shown.progress.stage == "finetune" and shown.progress.batch == 7 and shown.progress.total_batches == 20
    assert shown.progress.loss == 1.25 and shown.progress.validation == {"ndcg@10": 0.031}
    assert shown.progress.updated_at is not None and shown.owner == "host:1:task-a"

    # A result with a NaN (a metric that never got a value) is stored as null, not refused.
    assert runs.succeed(run.id, "host:1:task-a", {"model": "gnn-x", "metrics": {"final_loss": 0.5, "odd": math.nan}},
                        TrainingProgress(stage="save", batch=20, total_batches=20, loss=0.5))
    done = runs.get(run.id)
    assert done.status is JobStatus.succeeded and done.result == {"model": "gnn-x",
                                                                  "metrics": {"final_loss": 0.5, "odd": None}}
    assert done.progress.stage == "save" and done.owner is None and done.finished_at and done.duration_s >= 0
    # Finished: a late write of a stale owner changes nothing.
    assert not runs.fail(run.id, "late", owner="host:1:task-a")
    assert not runs.update_progress(run.id, "host:1:task-a", TrainingProgress(batch=1)).held
    assert runs.get(run.id).status is JobStatus.succeeded


def test_a_client_sees_only_its_own_runs(jobs_target):
    runs = TrainingStore(jobs_target)
    mine = runs.create("embed_pretrain", {}, client="mine")
    theirs = runs.create("rec_train", {}, client="theirs")
    runs.create("rec_train", {}, client="mine")
    assert runs.get(theirs.id, client="mine") is None and runs.get(theirs.id).id == theirs.id
    page = runs.list(client="mine")
    assert page.total == 2 and {r.kind for r in page.items} == {"embed_pretrain", "rec_train"}
    assert runs.list(client="mine", kind="rec_train").total == 1
    assert runs.list().total == 3
    with pytest.raises(TrainingRunNotFoundError):
        runs.request_cancel(theirs.id, client="mine")
    assert runs.get(mine.id, client="mine").id == mine.id


def test_cancel_queued_at_once_running_at_the_next_progress_write(jobs_target):
    runs = TrainingStore(jobs_target)
    queued = runs.create("embed_pretrain", {}, client=None)
    assert runs.request_cancel(queued.id).status is JobStatus.cancelled
    assert not runs.claim(queued.id, "h:1:t").claimed  # a late delivery does not start it

    running = runs.create("embed_pretrain", {}, client=None)
    assert runs.claim(running.id, "h:1:t").claimed
    after = runs.request_cancel(running.id)
    assert after.status is JobStatus.running and after.cancel_requested
    ack = runs.update_progress(running.id, "h:1:t", {"stage": "pretrain", "batch": 3})
    assert ack.held and ack.cancel_requested
    assert runs.finish_cancelled(running.id, "h:1:t", TrainingProgress(stage="pretrain", batch=3))
    final = runs.get(running.id)
    assert final.status is JobStatus.cancelled and final.progress.batch == 3 and final.result is None


def test_a_second_delivery_does_not_run_a_live_run_twice(jobs_target):
    runs = TrainingStore(jobs_target, lease_s=60, max_deliveries=1)
    run = runs.create("embed_pretrain", {}, client=None)
    import os
    import socket

    first = f"{socket.gethostname()}:{os.getpid()}:task-1"  # this process: alive
    assert runs.claim(run.id, first).claimed
    second = runs.claim(run.id, f"{socket.gethostname()}:{os.getpid()}:task-2")
    assert not second.claimed and "lease is alive" in second.reason
    assert runs.heartbeat(run.id, first)
    # The first owner dies (a pid that does not exist): the next delivery takes over, counting a death.
    with runs._tx() as conn:
        conn.execute("UPDATE training_runs SET owner=? WHERE id=?", (f"{socket.gethostname()}:999999999:task-1", run.id))
    third = runs.claim(run.id, "elsewhere:2:task-3")
    assert third.claimed and third.run.worker_deaths == 1 and third.run.attempts == 2
    assert not runs.heartbeat(run.id, first)
    # One more death than KGFORGE_TASK_MAX_DELIVERIES fails it with the reason.
    with runs._tx() as conn:
        conn.execute("UPDATE training_runs SET heartbeat=0 WHERE id=?", (run.id,))
    fourth = runs.claim(run.id, "elsewhere:3:task-4")
    assert not fourth.claimed and fourth.run.status is JobStatus.failed
    assert "worker died 2 times" in fourth.run.error


def test_failure_keeps_the_reason_and_the_last_progress(jobs_target):
    runs = TrainingStore(jobs_target)
    run = runs.create("embed_finetune", {}, client=None)
    runs.claim(run.id, "h:1:t")
    message = "TrainingDivergedError: finetune: the loss became nan at batch 4; nothing was saved."
    assert runs.fail(run.id, message, owner="h:1:t", progress=TrainingProgress(stage="finetune", batch=4))
    failed = runs.get(run.id)
    assert failed.status is JobStatus.failed and failed.error == message and failed.progress.batch == 4


def test_retry_note_puts_the_run_back_in_the_queue(jobs_target):
    runs = TrainingStore(jobs_target)
    run = runs.create("embed_finetune", {}, client=None)
    runs.claim(run.id, "h:1:t")
    assert runs.note_retry(run.id, "retry 1 of 3 after a transient error: locked")
    back = runs.get(run.id)
    assert back.status is JobStatus.queued and back.owner is None and "retry 1" in back.error
    again = runs.claim(run.id, "h:1:t2")
    assert again.claimed and again.run.worker_deaths == 0 and again.run.error is None


def test_shares_the_job_database_and_reopens_it(jobs_target):
    jobs = JobStore(jobs_target)
    job = jobs.create(JobSubmission(entities=[SourceEntity(name="virus")], domain="umls"))
    runs = TrainingStore(jobs_target)
    run = runs.create("rec_train", {"epochs": 2}, client="c")
    # Both stores open the same database again (schema checks are idempotent) and see their rows.
    assert JobStore(jobs_target).get(job.id).status is JobStatus.queued
    reopened = TrainingStore(jobs_target)
    assert reopened.get(run.id).params == {"epochs": 2}
    assert reopened.backend == jobs.backend


def test_the_reaper_requeues_orphaned_runs_resends_lost_ones_and_fails_after_too_many_deaths(jobs_target):
    """The job reaper's rule on the training runs: a run whose worker died goes back to the queue
    (a death counted) and gets a new message; a queued run the broker lost gets one; a live run and
    a run the broker holds are left alone."""
    import os
    import socket

    runs = TrainingStore(jobs_target, lease_s=30, max_deliveries=1)
    orphan, lost, held, live = (runs.create("embed_pretrain", {}) for _ in range(4))
    assert runs.claim(orphan.id, f"{socket.gethostname()}:999999999:task-o").claimed  # no such process
    assert runs.claim(live.id, f"{socket.gethostname()}:{os.getpid()}:task-l").claimed  # this process
    with runs._tx() as conn:  # queued for a minute, as if the API died before enqueueing
        conn.execute("UPDATE training_runs SET updated_at=? WHERE id IN (?, ?)",
                     ("2000-01-01T00:00:00+00:00", lost.id, held.id))

    report = runs.reap(broker_runs={held.id}, queued_grace_s=10)
    assert report.requeued == [orphan.id] and sorted(report.resend) == sorted([orphan.id, lost.id])
    back = runs.get(orphan.id)
    assert back.status is JobStatus.queued and back.worker_deaths == 1 and back.owner is None
    assert "re-queued: its worker stopped" in back.error
    assert runs.get(live.id).status is JobStatus.running and runs.get(held.id).status is JobStatus.queued
    # An unreadable broker: a queued run past the grace period is left alone (with the broker read
    # and the run absent from it, the same run would be resent).
    with runs._tx() as conn:
        conn.execute("UPDATE training_runs SET updated_at=? WHERE id=?", ("2000-01-01T00:00:00+00:00", lost.id))
    assert runs.reap(broker_runs=None, queued_grace_s=10).resend == []
    assert runs.reap(broker_runs={held.id, orphan.id}, queued_grace_s=10).resend == [lost.id]
    # The second death is one more than max_deliveries: the run fails naming the cap.
    assert runs.claim(orphan.id, f"{socket.gethostname()}:999999998:task-o2").claimed
    failed = runs.reap(broker_runs=set(), queued_grace_s=10)
    assert failed.failed == [orphan.id]
    assert runs.get(orphan.id).status is JobStatus.failed and "KGFORGE_TASK_MAX_DELIVERIES=1" in runs.get(orphan.id).error
