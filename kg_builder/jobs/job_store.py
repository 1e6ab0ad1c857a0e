"""JobStore: the durable state of entity jobs, in one SQLite file or in PostgreSQL.

Why SQLite: job state must survive restarts of the API, the workers *and* the broker, so it cannot
live in Redis (a broker restart without persistence loses it) or in process memory. It is written
by both the API (submit, cancel) and the workers (progress), at a rate of a few small transactions
per batch of entities. An embedded database in a file is the smallest thing that is durable and
transactional at that rate, needs no server in embedded mode (``kgforge up``), and is in the
standard library. The graph database is deliberately not used: jobs must be readable while the
graph database is down (the outage is what a retrying job reports).

Sharing it: in embedded mode every process runs on one machine and opens the same file
(``KGFORGE_JOBS_DB``, default ``KGFORGE_HOME/jobs.sqlite3``). SQLite's locking does not work over
network file systems, so containers or workers on several hosts need the server database behind
this same class:

PostgreSQL (issue 13): when ``KGFORGE_JOBS_URL`` is a ``postgresql://`` URL the same API, statements
and semantics run on PostgreSQL (psycopg 3 with a connection pool; compose does this), and
``KGFORGE_JOBS_DB`` is not used. :mod:`kg_builder.jobs.sql` holds what differs between the two and
why (row locks with ``SELECT ... FOR UPDATE`` where SQLite takes its file write lock up front).

Concurrency: WAL journal (readers never block the writer), ``synchronous=NORMAL`` (a committed
transaction survives a crash of any process, not a power cut; the trade-off is in
:mod:`kg_builder.jobs.sql`), one short-lived connection per call (so any thread or process may
call any method), ``BEGIN IMMEDIATE`` for every write (the write lock is taken up front, so
read-then-write sequences such as "cancel unless finished" are atomic; on PostgreSQL the job's row
is locked instead), and a 30 s busy timeout. A locked or unreachable database raises
:class:`JobStoreUnavailableError`, a ``RetryableError``.

Submitting is one short write transaction: the job row and its entity rows are inserted and the
returned :class:`Job` is built from the submission, not read back.

Clients (issue 13): a job records who submitted it in ``client``, a fingerprint of the API key
(never the key; see ``api.deps``), NULL for jobs submitted without a key (development). :meth:`list`,
:meth:`get` and :meth:`request_cancel` take ``client`` to show a caller only its own jobs; None
means every job (the workers, the CLI on the host, an admin key).

Leases (issue 9): a running job holds an ``owner`` (``host:pid:task``) and a ``heartbeat``
(epoch seconds) that its runner refreshes; :meth:`JobStore.claim` starts an attempt only when no
live lease is held elsewhere (:mod:`kg_builder.jobs.lease`), counts a takeover from a dead owner in
``worker_deaths`` and fails the job past ``max_deliveries``; :meth:`JobStore.reap` finds queued jobs
the broker lost and running jobs whose worker is gone.

Tables: ``jobs`` (one row per job: status, options, job-level counts, timestamps, error) and
``job_entities`` (one row per submitted entity: status pending/running/done/failed, its counts
and error). A batch of entities is recorded in one transaction (:meth:`JobStore.record_batch`),
and only entities still pending are updated, so a batch that is replayed after a crash, or run
twice by two workers, is counted once.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kg_builder.errors import KGForgeError, RetryableError
from kg_builder.pipeline.pipeline import PipelineOptions, SourceEntity
from kg_builder.settings import Settings

from . import lease
from .lease import ReapReport
from .sql import BUSY_TIMEOUT_S, Backend, BackendError, Connection, is_postgres_url, open_backend, redact  # noqa: F401
from .models import (
    EntityError,
    EntityResult,
    EntityStatus,
    Job,
    JobCounts,
    JobPage,
    JobProgress,
    JobStatus,
    JobSubmission,
    JobUsage,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
MAX_PAGE = 500

_SCHEMA_TEMPLATE = """
CREATE TABLE IF NOT EXISTS jobs (
    id               TEXT PRIMARY KEY,
    status           TEXT NOT NULL,
    domain           TEXT NOT NULL,
    options          TEXT NOT NULL,
    total            INTEGER NOT NULL,
    new_nodes        INTEGER NOT NULL DEFAULT 0,
    merged           INTEGER NOT NULL DEFAULT 0,
    triples_written  INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    duration_s       {real}
);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status);
CREATE TABLE IF NOT EXISTS job_entities (
    job_id     TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    entity     TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'pending',
    node_id    TEXT,
    generated  INTEGER NOT NULL DEFAULT 0,
    kept       INTEGER NOT NULL DEFAULT 0,
    error      TEXT,
    notes      TEXT,
    updated_at TEXT,
    PRIMARY KEY (job_id, position)
);
"""
# Added to older files in place: version 2 (issue 9) the lease, worker deaths and LLM usage; version 3
# (issue 10) the job kind; version 4 (issue 13) the submitting client.
_ADDED_COLUMNS_TEMPLATE = (
    "owner TEXT",
    "heartbeat {real}",
    "worker_deaths INTEGER NOT NULL DEFAULT 0",
    "prompt_tokens INTEGER NOT NULL DEFAULT 0",
    "completion_tokens INTEGER NOT NULL DEFAULT 0",
    "llm_calls INTEGER NOT NULL DEFAULT 0",
    "kind TEXT NOT NULL DEFAULT 'entities'",  # version 3: job kinds (entities, c2c, titles)
    "client TEXT",  # version 4: fingerprint of the submitting API key (NULL: no key)
)
# Statements that need the added columns.
_AFTER_COLUMNS = ("CREATE INDEX IF NOT EXISTS jobs_by_client ON jobs (client, created_at DESC, id DESC)",)
# REAL is 4 bytes in PostgreSQL: epoch-second heartbeats need 8.
_REAL = {"sqlite": "REAL", "postgresql": "DOUBLE PRECISION"}


def _tables(dialect: str) -> list[str]:
    return [s.strip() for s in _SCHEMA_TEMPLATE.format(real=_REAL[dialect]).split(";") if s.strip()]


def _added_columns(dialect: str) -> list[str]:
    return [c.format(real=_REAL[dialect]) for c in _ADDED_COLUMNS_TEMPLATE]


_SCHEMA = _SCHEMA_TEMPLATE.format(real="REAL")  # the version-1 SQLite tables (older files start here)


class JobStoreUnavailableError(RetryableError):
    """The job database is locked past the busy timeout or cannot be opened; retry later."""


class JobNotFoundError(KGForgeError):
    """No job with that id."""


@dataclass
class EntityOutcome:
    """What running one entity gave: ``error`` set means it failed (and counts are ignored)."""

    position: int
    node_id: str | None = None
    generated: int = 0
    kept: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Claim:
    """What :meth:`JobStore.claim` decided: ``claimed`` True means this owner now runs the job;
    otherwise ``reason`` says why not (finished, live lease elsewhere, cancelled, too many deaths)."""

    job: Job
    claimed: bool
    reason: str = ""


@dataclass
class BatchCounts:
    """Job-level counts of one written batch (entity resolution and the write report)."""

    new: int = 0
    merged: int = 0
    triples_written: int = 0


def _now() -> str:
    return datetime.now(UTC).isoformat()


class JobStore:
    """Durable job state (see the module docstring).

    Example::

        jobs = JobStore.from_settings(get_settings())
        job = jobs.create(JobSubmission(entities=[SourceEntity(name="virus")], domain="umls"))
        jobs.get(job.id).status   # JobStatus.queued
    """

    def __init__(self, target: Path | str, *, lease_s: float = 60.0, max_deliveries: int = 3):
        """``target``: a ``postgresql://`` URL, or the SQLite file (created with its folder)."""
        self.lease_s = float(lease_s)
        self.max_deliveries = int(max_deliveries)
        postgres = is_postgres_url(target)
        # Where the jobs live, for messages: the file, or the URL without its password.
        self.path: Path | str = str(target) if postgres else Path(target)
        try:
            self._db: Backend = open_backend(target)
            self.path = self._db.where if postgres else self.path
            self._db.ensure_schema(SCHEMA_VERSION, _tables(self._db.name), _added_columns(self._db.name),
                                   _AFTER_COLUMNS)
        except BackendError as e:
            where = redact(str(target)) if postgres else self.path
            setting = "KGFORGE_JOBS_URL and that the server is up" if postgres else \
                "KGFORGE_JOBS_DB and that its folder is writable"
            raise JobStoreUnavailableError(f"cannot open the job database {where}: {e}; check {setting}") from e

    @classmethod
    def from_settings(cls, settings: Settings) -> JobStore:
        """PostgreSQL when ``KGFORGE_JOBS_URL`` is set, else the SQLite file ``settings.jobs_db_path``."""
        return cls(settings.jobs_url or settings.jobs_db_path, lease_s=settings.job_lease_s,
                   max_deliveries=settings.task_max_deliveries)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._db.name

    def close(self) -> None:
        """Close pooled connections (PostgreSQL); the store reopens them if used again."""
        self._db.close()

    # --- connections -------------------------------------------------------------------------
    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Connection]:
        try:
            with self._db.tx(write) as conn:
                yield conn
        except BackendError as e:
            raise JobStoreUnavailableError(f"job database {self.path} unavailable: {e}") from e

    # --- writes: the API -----------------------------------------------------------------------
    def create(self, submission: JobSubmission, *, client: str | None = None) -> Job:
        """Persist a new queued job with one pending row per entity; returns it.

        ``client``: the submitter's key fingerprint (None: submitted without a key). One short
        write transaction (two inserts); the returned job is built from the submission.
        """
        job_id = str(uuid.uuid4())
        now = _now()
        options = submission.options.model_dump_json()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO jobs (id, status, domain, kind, options, total, client, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, JobStatus.queued.value, submission.domain, submission.kind, options,
                 len(submission.entities), client, now, now),
            )
            conn.executemany(
                "INSERT INTO job_entities (job_id, position, entity, updated_at) VALUES (?, ?, ?, ?)",
                [(job_id, i, e.model_dump_json(), now) for i, e in enumerate(submission.entities)],
            )
        total = len(submission.entities)
        return Job(
            id=job_id, status=JobStatus.queued, domain=submission.domain, kind=submission.kind,
            options=PipelineOptions.model_validate_json(options),
            progress=JobProgress(total=total, done=0, failed=0, running=0, pending=total),
            counts=JobCounts(generated=0, kept=0, new=0, merged=0, triples_written=0),
            usage=JobUsage(), created_at=now, updated_at=now,
            entities=[EntityResult(position=i, name=e.name, status=EntityStatus.pending, node_id=None,
                                   generated=0, kept=0, error=None, notes=[])
                      for i, e in enumerate(submission.entities)],
        )

    def request_cancel(self, job_id: str, *, client: str | None = None) -> Job:
        """Cancel a queued job at once; ask a running one to stop after its current batch.

        A job that already finished is returned unchanged (the caller decides what that means).
        With ``client``, another client's job is not found (:class:`JobNotFoundError`).
        """
        now = _now()
        with self._tx() as conn:
            row = self._row(conn, job_id, lock=True)
            if client is not None and row["client"] != client:
                raise self._not_found(job_id)
            status = JobStatus(row["status"])
            if status is JobStatus.queued:
                conn.execute(
                    "UPDATE jobs SET status=?, cancel_requested=1, finished_at=?, updated_at=? WHERE id=?",
                    (JobStatus.cancelled.value, now, now, job_id),
                )
            elif status is JobStatus.running:
                conn.execute("UPDATE jobs SET cancel_requested=1, updated_at=? WHERE id=?", (now, job_id))
            return self._read(conn, job_id)

    def note_enqueue_error(self, job_id: str, message: str) -> None:
        """Record that a queued job could not be handed to the broker (it stays queued)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE jobs SET error=?, updated_at=? WHERE id=? AND status=?",
                (message, _now(), job_id, JobStatus.queued.value),
            )

    # --- writes: the runner --------------------------------------------------------------------
    def mark_running(self, job_id: str, owner: str | None = None) -> Job:
        """Start an attempt for ``owner`` (default: this process) and return the job; see :meth:`claim`."""
        return self.claim(job_id, owner or lease.make_owner()).job

    def claim(self, job_id: str, owner: str) -> Claim:
        """Start an attempt: queued (or running, on redelivery) -> running under ``owner``'s lease.

        Atomic (one ``BEGIN IMMEDIATE`` transaction), so two deliveries racing for one job cannot
        both win. Not claimed, and the job left untouched, when it is finished or when another
        owner's lease is alive (:func:`~kg_builder.jobs.lease.lease_alive`). A job whose
        cancellation was requested while it waited is cancelled here. Taking over from an owner
        whose lease died counts a worker death; past ``max_deliveries`` deaths the job fails with
        the reason instead.
        """
        now_s = time.time()
        now = _now()
        with self._tx() as conn:
            row = self._row(conn, job_id, lock=True)
            decision = lease.decide_claim(row, owner=owner, lease_s=self.lease_s, max_deliveries=self.max_deliveries,
                                          now=now_s, label=f"job {job_id}")
            if decision.action is lease.ClaimAction.cancel:
                self._finish(conn, job_id, JobStatus.cancelled, now, None)
            elif decision.action is lease.ClaimAction.fail:
                conn.execute("UPDATE jobs SET worker_deaths=? WHERE id=?", (decision.deaths, job_id))
                self._finish(conn, job_id, JobStatus.failed, now, self._deaths_message(decision.deaths))
            if decision.action is not lease.ClaimAction.take:
                return Claim(self._read(conn, job_id), False, decision.reason)
            conn.execute(
                "UPDATE jobs SET status=?, attempts=attempts+1, error=NULL, started_at=?, updated_at=?, "
                "owner=?, heartbeat=?, worker_deaths=? WHERE id=?",
                (JobStatus.running.value, now, now, owner, now_s, decision.deaths, job_id),
            )
            return Claim(self._read(conn, job_id), True)

    def _deaths_message(self, deaths: int) -> str:
        return (f"worker died {deaths} times while running this job (more than KGFORGE_TASK_MAX_DELIVERIES="
                f"{self.max_deliveries}); the job may crash its worker (out of memory?): see the worker logs, "
                "then submit it again (what its done entities wrote stays in the graph)")

    def heartbeat(self, job_id: str, owner: str) -> bool:
        """Refresh ``owner``'s lease; False when it no longer holds the job (taken over, finished)."""
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET heartbeat=? WHERE id=? AND owner=? AND status=?",
                (time.time(), job_id, owner, JobStatus.running.value),
            )
            return cursor.rowcount == 1

    def release(self, job_id: str, owner: str) -> bool:
        """Give up ``owner``'s lease without finishing the job (the next delivery resumes it at once,
        without counting a worker death); True when ``owner`` held it."""
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET owner=NULL, heartbeat=NULL, updated_at=? WHERE id=? AND owner=?",
                (_now(), job_id, owner),
            )
            return cursor.rowcount == 1

    def add_usage(self, job_id: str, usage: JobUsage) -> None:
        """Add LLM tokens and calls spent by the job."""
        if not (usage.prompt_tokens or usage.completion_tokens or usage.calls):
            return
        with self._tx() as conn:
            conn.execute(
                "UPDATE jobs SET prompt_tokens=prompt_tokens+?, completion_tokens=completion_tokens+?, "
                "llm_calls=llm_calls+? WHERE id=?",
                (usage.prompt_tokens, usage.completion_tokens, usage.calls, job_id),
            )

    def reap(self, *, broker_jobs: set[str] | None, queued_grace_s: float, reason: str | None = None,
             count_deaths: bool = True) -> ReapReport:
        """Find jobs nobody will run and make them runnable again (or fail them), in one transaction:
        orphaned ``running`` jobs and stuck ``queued`` ones (``broker_jobs``: the job ids the broker
        holds, None when it could not be asked), by :func:`kg_builder.jobs.lease.reap_rows`'s rule.
        Returns the ids that need a new broker message (``resend``)."""
        with self._tx() as conn:
            return lease.reap_rows(conn, table="jobs", for_update=self._db.for_update, lease_s=self.lease_s,
                                   max_deliveries=self.max_deliveries, broker_ids=broker_jobs,
                                   queued_grace_s=queued_grace_s, reason=reason, count_deaths=count_deaths,
                                   finish=self._finish, deaths_message=self._deaths_message, now=_now())

    def submission(self, job_id: str) -> JobSubmission:
        """What was submitted (entities in order, domain, options)."""
        with self._tx(write=False) as conn:
            row = self._row(conn, job_id)
            entities = [
                SourceEntity.model_validate_json(r["entity"])
                for r in conn.execute(
                    "SELECT entity FROM job_entities WHERE job_id=? ORDER BY position", (job_id,)
                )
            ]
        return JobSubmission(
            entities=entities,
            domain=row["domain"],
            kind=row["kind"],
            options=PipelineOptions.model_validate_json(row["options"]),
        )

    def pending_entities(self, job_id: str) -> list[tuple[int, SourceEntity]]:
        """(position, entity) of every entity not yet done or failed, in submission order."""
        with self._tx(write=False) as conn:
            self._row(conn, job_id)
            rows = conn.execute(
                "SELECT position, entity FROM job_entities WHERE job_id=? AND status IN (?, ?) "
                "ORDER BY position",
                (job_id, EntityStatus.pending.value, EntityStatus.running.value),
            )
            return [(r["position"], SourceEntity.model_validate_json(r["entity"])) for r in rows]

    def entity_running(self, job_id: str, position: int) -> None:
        """Mark one entity as computed-but-not-yet-written (progress only; a replay redoes it)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE job_entities SET status=?, updated_at=? WHERE job_id=? AND position=? AND status=?",
                (EntityStatus.running.value, _now(), job_id, position, EntityStatus.pending.value),
            )

    def record_batch(
        self, job_id: str, outcomes: Sequence[EntityOutcome], counts: BatchCounts | None = None
    ) -> int:
        """Record a written batch in one transaction; returns how many entities it changed.

        Only entities that are still pending or running change, and the batch's job-level counts
        are added only when at least one did: a replayed or duplicated batch is counted once.
        """
        now = _now()
        changed = 0
        with self._tx() as conn:
            self._row(conn, job_id, lock=True)  # one batch of a job at a time: counted once
            for o in outcomes:
                status = EntityStatus.failed if o.error is not None else EntityStatus.done
                cursor = conn.execute(
                    "UPDATE job_entities SET status=?, node_id=?, generated=?, kept=?, error=?, notes=?, "
                    "updated_at=? "
                    "WHERE job_id=? AND position=? AND status IN (?, ?)",
                    (
                        status.value,
                        o.node_id,
                        o.generated,
                        o.kept,
                        o.error,
                        json.dumps(o.notes) if o.notes else None,
                        now,
                        job_id,
                        o.position,
                        EntityStatus.pending.value,
                        EntityStatus.running.value,
                    ),
                )
                changed += cursor.rowcount
            if changed and counts is not None:
                conn.execute(
                    "UPDATE jobs SET new_nodes=new_nodes+?, merged=merged+?, "
                    "triples_written=triples_written+?, updated_at=? WHERE id=?",
                    (counts.new, counts.merged, counts.triples_written, now, job_id),
                )
            elif changed:
                conn.execute("UPDATE jobs SET updated_at=? WHERE id=?", (now, job_id))
        return changed

    def entity_done(
        self,
        job_id: str,
        position: int,
        *,
        node_id: str | None = None,
        generated: int = 0,
        kept: int = 0,
        notes: Sequence[str] = (),
    ) -> int:
        """Record one entity as done (see :meth:`record_batch` for batches)."""
        return self.record_batch(
            job_id, [EntityOutcome(position, node_id, generated, kept, notes=list(notes))]
        )

    def entity_failed(self, job_id: str, position: int, error: str) -> int:
        """Record one entity as failed with the reason."""
        return self.record_batch(job_id, [EntityOutcome(position, error=error)])

    def finish(self, job_id: str) -> Job:
        """running -> succeeded, or failed when no entity succeeded (with the first errors named).

        A job shown as queued (a retry note that raced with the retry itself) finishes the same way.
        """
        now = _now()
        with self._tx() as conn:
            if not self._status(conn, job_id, lock=True).terminal:
                counts = self._entity_counts(conn, [job_id]).get(job_id, {})
                done, failed = (
                    counts.get(EntityStatus.done.value, 0),
                    counts.get(EntityStatus.failed.value, 0),
                )
                if done == 0 and failed > 0:
                    first = conn.execute(
                        "SELECT error FROM job_entities WHERE job_id=? AND status=? "
                        "ORDER BY position LIMIT 1",
                        (job_id, EntityStatus.failed.value),
                    ).fetchone()
                    self._finish(
                        conn,
                        job_id,
                        JobStatus.failed,
                        now,
                        f"every entity failed ({failed}); first error: {first['error']}",
                    )
                else:
                    self._finish(conn, job_id, JobStatus.succeeded, now, None)
            return self._read(conn, job_id)

    def fail(self, job_id: str, message: str) -> bool:
        """Mark a job failed with ``message`` unless it already finished; True when it changed."""
        with self._tx() as conn:
            if self._status(conn, job_id, lock=True).terminal:
                return False
            self._finish(conn, job_id, JobStatus.failed, _now(), message)
            return True

    def cancel(self, job_id: str) -> bool:
        """Mark a job cancelled unless it already finished; True when it changed."""
        with self._tx() as conn:
            if self._status(conn, job_id, lock=True).terminal:
                return False
            conn.execute("UPDATE jobs SET cancel_requested=1 WHERE id=?", (job_id,))
            self._finish(conn, job_id, JobStatus.cancelled, _now(), None)
            return True

    def note_retry(self, job_id: str, message: str) -> bool:
        """A transient error: the job goes back to queued with ``message`` until the retry starts."""
        with self._tx() as conn:
            if self._status(conn, job_id, lock=True).terminal:
                return False
            conn.execute(
                "UPDATE jobs SET status=?, error=?, owner=NULL, heartbeat=NULL, updated_at=? WHERE id=?",
                (JobStatus.queued.value, message, _now(), job_id),
            )
            return True

    def is_cancelled(self, job_id: str) -> bool:
        """True once cancellation was requested (or the job is cancelled)."""
        with self._tx(write=False) as conn:
            row = self._row(conn, job_id)
            return bool(row["cancel_requested"]) or row["status"] == JobStatus.cancelled.value

    # --- reads ---------------------------------------------------------------------------------
    def get(self, job_id: str, *, entities: bool = True, client: str | None = None) -> Job | None:
        """The job, with per-entity results when ``entities``; None when unknown (or, with
        ``client``, submitted by another client)."""
        with self._tx(write=False) as conn:
            try:
                row = self._row(conn, job_id)
            except JobNotFoundError:
                return None
            if client is not None and row["client"] != client:
                return None
            return self._jobs(conn, [row], entities=entities)[0]

    def list(self, *, limit: int = 50, offset: int = 0, status: JobStatus | None = None,
             client: str | None = None) -> JobPage:
        """Jobs newest first, ``limit`` (1-500) from ``offset``; ``total`` counts all matching jobs.

        With ``client``, only the jobs that client submitted."""
        limit = max(1, min(int(limit), MAX_PAGE))
        offset = max(0, int(offset))
        conditions, params = [], []
        if status is not None:
            conditions.append("status=?")
            params.append(status.value)
        if client is not None:
            conditions.append("client=?")
            params.append(client)
        where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
        with self._tx(write=False) as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM jobs {where}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT * FROM jobs {where} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
            items = self._jobs(conn, rows, entities=False)
        return JobPage(items=items, total=total, limit=limit, offset=offset)

    def status_counts(self) -> dict[JobStatus, int]:
        """Jobs per status (every status present, zeros included)."""
        with self._tx(write=False) as conn:
            found = dict(conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())
        return {s: int(found.get(s.value, 0)) for s in JobStatus}

    def totals(self) -> dict[str, int]:
        """Sums over every job: triples written, new nodes, merges, entities done and failed, LLM
        tokens (prompt, completion) and calls, worker deaths."""
        with self._tx(write=False) as conn:
            jobs = conn.execute(
                "SELECT COALESCE(SUM(triples_written), 0), COALESCE(SUM(new_nodes), 0), "
                "COALESCE(SUM(merged), 0), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
                "COALESCE(SUM(llm_calls), 0), COALESCE(SUM(worker_deaths), 0) FROM jobs"
            ).fetchone()
            entities = dict(
                conn.execute("SELECT status, COUNT(*) FROM job_entities GROUP BY status").fetchall()
            )
        return {
            "triples_written": jobs[0],
            "new_nodes": jobs[1],
            "merged": jobs[2],
            "prompt_tokens": jobs[3],
            "completion_tokens": jobs[4],
            "llm_calls": jobs[5],
            "worker_deaths": jobs[6],
            "entities_done": entities.get(EntityStatus.done.value, 0),
            "entities_failed": entities.get(EntityStatus.failed.value, 0),
        }

    def durations(self, buckets: Sequence[float]) -> tuple[list[int], int, float]:
        """Cumulative counts of finished attempts' run times per upper bound, the count and the sum (s)."""
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT COUNT(duration_s), COALESCE(SUM(duration_s), 0) FROM jobs "
                "WHERE duration_s IS NOT NULL"
            ).fetchone()
            cumulative = [
                conn.execute("SELECT COUNT(*) FROM jobs WHERE duration_s <= ?", (b,)).fetchone()[0]
                for b in buckets
            ]
        return cumulative, int(row[0]), float(row[1])

    # --- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _not_found(job_id: str) -> JobNotFoundError:
        return JobNotFoundError(f"no job {job_id!r}; `GET /v1/jobs` lists the jobs")

    def _row(self, conn: Connection, job_id: str, *, lock: bool = False) -> Any:
        """The job's row; ``lock`` (write transactions that then write it) locks it on PostgreSQL."""
        row = conn.execute("SELECT * FROM jobs WHERE id=?" + (self._db.for_update if lock else ""),
                           (job_id,)).fetchone()
        if row is None:
            raise self._not_found(job_id)
        return row

    def _status(self, conn: Connection, job_id: str, *, lock: bool = False) -> JobStatus:
        return JobStatus(self._row(conn, job_id, lock=lock)["status"])

    def _finish(self, conn: Connection, job_id: str, status: JobStatus, now: str, error: str | None) -> None:
        conn.execute(
            "UPDATE jobs SET status=?, error=?, finished_at=?, updated_at=?, owner=NULL, heartbeat=NULL, "
            "duration_s=CASE WHEN started_at IS NULL "
            f"THEN NULL ELSE {self._db.duration_s('?', 'started_at')} END WHERE id=?",
            (status.value, error, now, now, now, job_id),
        )

    @staticmethod
    def _entity_counts(conn: Connection, job_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        marks = ",".join("?" * len(job_ids))
        counts: dict[str, dict[str, int]] = {}
        for r in conn.execute(
            f"SELECT job_id, status, COUNT(*) AS n, SUM(generated) AS g, SUM(kept) AS k "
            f"FROM job_entities WHERE job_id IN ({marks}) GROUP BY job_id, status",
            list(job_ids),
        ):
            c = counts.setdefault(r["job_id"], {"generated": 0, "kept": 0})
            c[r["status"]] = r["n"]
            c["generated"] += r["g"] or 0
            c["kept"] += r["k"] or 0
        return counts

    def _read(self, conn: Connection, job_id: str, *, entities: bool = False) -> Job:
        return self._jobs(conn, [self._row(conn, job_id)], entities=entities)[0]

    def _jobs(self, conn: Connection, rows: Sequence[Any], *, entities: bool) -> list[Job]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        counts = self._entity_counts(conn, ids)
        marks = ",".join("?" * len(ids))
        errors: dict[str, list[EntityError]] = {}
        results: dict[str, list[EntityResult]] = {}
        query = (
            "SELECT job_id, position, entity, status, node_id, generated, kept, error, notes "
            f"FROM job_entities "
            f"WHERE job_id IN ({marks})" + ("" if entities else " AND status='failed'") + " ORDER BY position"
        )
        for r in conn.execute(query, ids):
            name = json.loads(r["entity"])["name"]
            if r["status"] == EntityStatus.failed.value:
                errors.setdefault(r["job_id"], []).append(
                    EntityError(position=r["position"], name=name, error=r["error"] or "failed")
                )
            if entities:
                results.setdefault(r["job_id"], []).append(
                    EntityResult(
                        position=r["position"],
                        name=name,
                        status=EntityStatus(r["status"]),
                        node_id=r["node_id"],
                        generated=r["generated"],
                        kept=r["kept"],
                        error=r["error"],
                        notes=json.loads(r["notes"]) if r["notes"] else [],
                    )
                )
        jobs = []
        for r in rows:
            c = counts.get(r["id"], {})
            progress = JobProgress(
                total=r["total"],
                done=c.get("done", 0),
                failed=c.get("failed", 0),
                running=c.get("running", 0),
                pending=c.get("pending", 0),
            )
            jobs.append(
                Job(
                    id=r["id"],
                    status=JobStatus(r["status"]),
                    domain=r["domain"],
                    kind=r["kind"],
                    options=PipelineOptions.model_validate_json(r["options"]),
                    progress=progress,
                    counts=JobCounts(
                        generated=c.get("generated", 0),
                        kept=c.get("kept", 0),
                        new=r["new_nodes"],
                        merged=r["merged"],
                        triples_written=r["triples_written"],
                    ),
                    errors=errors.get(r["id"], []),
                    error=r["error"],
                    cancel_requested=bool(r["cancel_requested"]),
                    attempts=r["attempts"],
                    worker_deaths=r["worker_deaths"],
                    owner=r["owner"],
                    heartbeat_at=(datetime.fromtimestamp(r["heartbeat"], UTC) if r["heartbeat"] is not None
                                  else None),
                    usage=JobUsage(prompt_tokens=r["prompt_tokens"], completion_tokens=r["completion_tokens"],
                                   total_tokens=r["prompt_tokens"] + r["completion_tokens"], calls=r["llm_calls"]),
                    created_at=r["created_at"],
                    updated_at=r["updated_at"],
                    started_at=r["started_at"],
                    finished_at=r["finished_at"],
                    entities=results.get(r["id"], []) if entities else None,
                )
            )
        return jobs


__all__ = ["BatchCounts", "Claim", "EntityOutcome", "JobNotFoundError", "JobStore", "JobStoreUnavailableError",
           "ReapReport"]
