"""Job leases in the job store: a live lease elsewhere stops a second run, a dead one is taken over
and counted, too many worker deaths fail the job naming the cap, and the reaper finds stuck queued
jobs and orphaned running ones; on SQLite and on PostgreSQL (``jobs_target`` in conftest.py)."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time

import pytest
from job_databases import age_update, execute

from kg_builder.jobs import JobStatus, JobStore, JobSubmission
from kg_builder.jobs.lease import Heartbeat, lease_alive, make_owner, parse_owner, process_exists
from kg_builder.pipeline import PipelineOptions, SourceEntity

ELSEWHERE = "other-host.example:4242:task-a"  # another machine: only its heartbeat counts


def submission(*names: str) -> JobSubmission:
    return JobSubmission(entities=[SourceEntity(name=n) for n in names], domain="zoo",
                         options=PipelineOptions(generators=["graph"]))


def age_heartbeat(store: JobStore, job_id: str, seconds: float) -> None:
    execute(store, "UPDATE jobs SET heartbeat = heartbeat - ? WHERE id=?", (seconds, job_id))


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def store(jobs_target) -> JobStore:
    return JobStore(jobs_target, lease_s=30, max_deliveries=2)


def test_owner_strings_and_process_liveness():
    owner = make_owner("task-1")
    host, pid, task = parse_owner(owner)
    assert host == socket.gethostname() and task == "task-1" and process_exists(pid)
    assert not process_exists(dead_pid())
    now = time.time()
    assert lease_alive(ELSEWHERE, now - 5, lease_s=30, now=now)
    assert not lease_alive(ELSEWHERE, now - 31, lease_s=30, now=now)
    assert not lease_alive(f"{socket.gethostname()}:{dead_pid()}:t", now, lease_s=30, now=now)  # dead here
    assert not lease_alive(None, now, lease_s=30)


def test_a_live_lease_elsewhere_stops_a_second_run_and_leaves_the_job_untouched(store):
    job_id = store.create(submission("sheep")).id
    first = store.claim(job_id, ELSEWHERE)
    assert first.claimed and first.job.status is JobStatus.running and first.job.owner == ELSEWHERE
    before = store.get(job_id)

    second = store.claim(job_id, make_owner("task-b"))
    assert not second.claimed and "alive elsewhere" in second.reason
    after = store.get(job_id)
    assert after.model_dump() == before.model_dump()  # attempts, owner, heartbeat, timestamps: all as they were
    assert store.heartbeat(job_id, ELSEWHERE)


def test_an_expired_lease_is_taken_over_and_counted_and_the_old_owner_learns_it(store):
    job_id = store.create(submission("sheep")).id
    store.claim(job_id, ELSEWHERE)
    age_heartbeat(store, job_id, 31)
    me = make_owner("task-b")
    claim = store.claim(job_id, me)
    assert claim.claimed and claim.job.owner == me and claim.job.attempts == 2 and claim.job.worker_deaths == 1
    assert not store.heartbeat(job_id, ELSEWHERE)  # the old runner stops before its next batch
    assert store.heartbeat(job_id, me)


def test_a_dead_process_on_this_host_is_taken_over_at_once(store):
    job_id = store.create(submission("sheep")).id
    store.claim(job_id, f"{socket.gethostname()}:{dead_pid()}:task-a")  # heartbeat fresh, process gone
    claim = store.claim(job_id, make_owner("task-b"))
    assert claim.claimed and claim.job.worker_deaths == 1


def test_a_released_lease_is_resumed_without_counting_a_death(store):
    job_id = store.create(submission("sheep")).id
    store.claim(job_id, ELSEWHERE)
    assert store.release(job_id, ELSEWHERE)
    claim = store.claim(job_id, make_owner())
    assert claim.claimed and claim.job.worker_deaths == 0


def test_too_many_worker_deaths_fail_the_job_naming_the_cap(store):
    job_id = store.create(submission("sheep")).id
    for i in range(4):  # max_deliveries=2: a first run, two deaths survived, the third one too many
        owner = f"other-host.example:{100 + i}:task-{i}"
        claim = store.claim(job_id, owner)
        if i < 3:
            assert claim.claimed, claim.reason
            age_heartbeat(store, job_id, 31)
    job = store.get(job_id)
    assert not claim.claimed and job.status is JobStatus.failed and job.worker_deaths == 3
    assert "worker died 3 times" in job.error and "KGFORGE_TASK_MAX_DELIVERIES=2" in job.error
    assert job.owner is None


def test_reap_requeues_orphans_resends_stuck_queued_jobs_and_leaves_live_ones(store):
    orphan = store.create(submission("a")).id
    store.claim(orphan, ELSEWHERE)
    age_heartbeat(store, orphan, 31)
    live = store.create(submission("b")).id
    store.claim(live, "other-host.example:7:task-live")
    stuck = store.create(submission("c")).id  # the broker never got it
    age_update(store, stuck, 120)
    waiting = store.create(submission("d")).id  # its message is in the broker
    age_update(store, waiting, 120)
    fresh = store.create(submission("e")).id  # just submitted: the API may still be enqueueing it

    report = store.reap(broker_jobs={waiting}, queued_grace_s=30)
    assert report.requeued == [orphan] and sorted(report.resend) == sorted([orphan, stuck])
    assert report.failed == []
    job = store.get(orphan)
    assert job.status is JobStatus.queued and job.owner is None and job.worker_deaths == 1
    assert "re-queued" in job.error and "stopped" in job.error
    assert store.get(live).status is JobStatus.running
    assert {store.get(j).status for j in (stuck, waiting, fresh)} == {JobStatus.queued}
    # the resent job's clock restarted: the next pass does not send it again while the broker catches up
    assert store.reap(broker_jobs={waiting}, queued_grace_s=30).resend == []
    # without a broker answer, queued jobs are left alone
    age_update(store, stuck, 120)
    assert store.reap(broker_jobs=None, queued_grace_s=30).resend == []


def test_reap_without_counting_deaths_and_past_the_cap(store, jobs_target):
    job_id = store.create(submission("a")).id
    store.claim(job_id, ELSEWHERE)
    age_heartbeat(store, job_id, 31)
    report = store.reap(broker_jobs=None, queued_grace_s=0, count_deaths=False, reason="the stack stopped")
    assert report.requeued == [job_id]
    job = store.get(job_id)
    assert job.worker_deaths == 0 and job.error == "re-queued: the stack stopped"

    capped = JobStore(jobs_target, lease_s=30, max_deliveries=0)
    other = capped.create(submission("b")).id
    capped.claim(other, ELSEWHERE)
    age_heartbeat(capped, other, 31)
    assert capped.reap(broker_jobs=set(), queued_grace_s=30).failed == [other]
    assert "worker died 1 times" in capped.get(other).error


def test_the_heartbeat_thread_refreshes_and_notices_a_takeover(store):
    job_id = store.create(submission("a")).id
    store.claim(job_id, ELSEWHERE)
    first = store.get(job_id).heartbeat_at
    with Heartbeat(lambda: store.heartbeat(job_id, ELSEWHERE), 0.5) as beat:
        time.sleep(1.3)
        assert store.get(job_id).heartbeat_at > first and not beat.lost.is_set()
        age_heartbeat(store, job_id, 31)
        store.claim(job_id, make_owner("task-b"))
        assert beat.lost.wait(3)


def test_a_version_1_job_file_is_upgraded_in_place(tmp_path):
    from kg_builder.jobs import job_store as store_module

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(store_module._SCHEMA)
        conn.execute("PRAGMA user_version=1")
        conn.execute("INSERT INTO jobs (id, status, domain, options, total, created_at, updated_at) "
                     "VALUES ('old', 'queued', 'zoo', '{}', 0, '2026-01-01T00:00:00+00:00', "
                     "'2026-01-01T00:00:00+00:00')")
    jobs = JobStore(path)
    job = jobs.get("old")
    assert job.status is JobStatus.queued and job.worker_deaths == 0 and job.usage.calls == 0
    assert jobs.list(client="someone").total == 0 and jobs.list().total == 1
    assert jobs.claim("old", ELSEWHERE).claimed


def test_a_version_1_postgres_schema_is_upgraded_in_place(postgres_url):
    import psycopg

    from kg_builder.jobs import job_store as store_module

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for statement in filter(str.strip, store_module._SCHEMA.split(";")):
            conn.execute(statement)
        conn.execute("CREATE TABLE jobs_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO jobs_schema VALUES (1)")
        conn.execute("INSERT INTO jobs (id, status, domain, options, total, created_at, updated_at) "
                     "VALUES ('old', 'queued', 'zoo', '{}', 0, '2026-01-01T00:00:00+00:00', "
                     "'2026-01-01T00:00:00+00:00')")
    jobs = JobStore(postgres_url)
    job = jobs.get("old")
    assert job.status is JobStatus.queued and job.worker_deaths == 0 and job.usage.calls == 0
    assert jobs.list(client="someone").total == 0 and jobs.list().total == 1
    assert jobs.claim("old", ELSEWHERE).claimed
    jobs.heartbeat("old", ELSEWHERE)
    assert abs(jobs.get("old").heartbeat_at.timestamp() - time.time()) < 5  # 8-byte floats, not REAL


def decide(**overrides):
    """The shared claim rule on a quiet default row: queued, unowned, no deaths."""
    from kg_builder.jobs.lease import decide_claim

    row = dict(status="queued", owner=None, heartbeat=None, cancel_requested=0, worker_deaths=0)
    row.update({k: v for k, v in overrides.items() if k in row})
    return decide_claim(row, owner="me:1:t", lease_s=30.0, max_deliveries=2, now=1000.0, label="job x")


def test_claim_rule_covers_each_outcome_in_order():
    from kg_builder.jobs.lease import ClaimAction

    assert decide().action is ClaimAction.take and decide().deaths == 0
    finished = decide(status="succeeded", cancel_requested=1)
    assert finished.action is ClaimAction.refuse and "already succeeded" in finished.reason
    alive = decide(owner=ELSEWHERE, heartbeat=995.0, status="running", cancel_requested=1)
    assert alive.action is ClaimAction.refuse and "lease is alive" in alive.reason
    assert decide(cancel_requested=1).action is ClaimAction.cancel
    dead = decide(owner=ELSEWHERE, heartbeat=900.0, status="running", worker_deaths=1)
    assert dead.action is ClaimAction.take and dead.deaths == 2
    too_many = decide(owner=ELSEWHERE, heartbeat=900.0, status="running", worker_deaths=2)
    assert too_many.action is ClaimAction.fail and too_many.deaths == 3
    # a queued row left by a dead owner (re-enqueued) is not a death; one's own redelivery is not either
    assert decide(owner=ELSEWHERE, heartbeat=900.0, status="queued", worker_deaths=2).deaths == 2
    assert decide(owner="me:1:t", heartbeat=999.0, status="running").action is ClaimAction.take
