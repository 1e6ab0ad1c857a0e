"""JobStore: the durable state of entity jobs, in one SQLite file.

Why SQLite: job state must survive restarts of the API, the workers *and* the broker, so it cannot
live in Redis (a broker restart without persistence loses it) or in process memory. It is written
by both the API (submit, cancel) and the workers (progress), at a rate of a few small transactions
per batch of entities. An embedded database in a file is the smallest thing that is durable and
transactional at that rate, needs no server in embedded mode (``kgforge up``), and is in the
standard library. The graph database is deliberately not used: jobs must be readable while the
graph database is down (the outage is what a retrying job reports).

Sharing it: in embedded mode every process runs on one machine and opens the same file
(``KGFORGE_JOBS_DB``, default ``KGFORGE_HOME/jobs.sqlite3``). Under compose, the API and the worker
containers mount the same ``kgforge-home`` volume at ``KGFORGE_HOME``, so they open the same file;
that volume is local to one Docker host. SQLite's locking does not work over network file systems,
so running workers on several hosts would need a server database behind this same class.

Concurrency: WAL journal (readers never block the writer), ``synchronous=FULL`` (a committed
transaction survives a power cut), one short-lived connection per call (so any thread or process
may call any method), ``BEGIN IMMEDIATE`` for every write (the write lock is taken up front, so
read-then-write sequences such as "cancel unless finished" are atomic), and a 30 s busy timeout.
A locked or unreadable database raises :class:`JobStoreUnavailableError`, a ``RetryableError``.

Tables: ``jobs`` (one row per job: status, options, job-level counts, timestamps, error) and
``job_entities`` (one row per submitted entity: status pending/running/done/failed, its counts
and error). A batch of entities is recorded in one transaction (:meth:`JobStore.record_batch`),
and only entities still pending are updated, so a batch that is replayed after a crash, or run
twice by two workers, is counted once.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kg_builder.errors import KGForgeError, RetryableError
from kg_builder.pipeline.pipeline import PipelineOptions, SourceEntity
from kg_builder.settings import Settings

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
)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0
MAX_PAGE = 500

_SCHEMA = """
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
    duration_s       REAL
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

    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connection() as conn:
                # WAL is a property of the file; setting it once is enough, repeating it is harmless.
                conn.execute("PRAGMA journal_mode=WAL")
                if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                    conn.executescript(_SCHEMA)
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (sqlite3.Error, OSError) as e:
            raise JobStoreUnavailableError(
                f"cannot open the job database {self.path}: {e}; check "
                "KGFORGE_JOBS_DB and that its folder is writable"
            ) from e

    @classmethod
    def from_settings(cls, settings: Settings) -> JobStore:
        return cls(settings.jobs_db_path)

    # --- connections -------------------------------------------------------------------------
    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=FULL")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        try:
            with self._connection() as conn:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except sqlite3.OperationalError as e:
            raise JobStoreUnavailableError(f"job database {self.path} unavailable: {e}") from e

    # --- writes: the API -----------------------------------------------------------------------
    def create(self, submission: JobSubmission) -> Job:
        """Persist a new queued job with one pending row per entity; returns it."""
        job_id = str(uuid.uuid4())
        now = _now()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO jobs (id, status, domain, options, total, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    JobStatus.queued.value,
                    submission.domain,
                    submission.options.model_dump_json(),
                    len(submission.entities),
                    now,
                    now,
                ),
            )
            conn.executemany(
                "INSERT INTO job_entities (job_id, position, entity, updated_at) VALUES (?, ?, ?, ?)",
                [(job_id, i, e.model_dump_json(), now) for i, e in enumerate(submission.entities)],
            )
            return self._read(conn, job_id, entities=True)

    def request_cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once; ask a running one to stop after its current batch.

        A job that already finished is returned unchanged (the caller decides what that means).
        """
        now = _now()
        with self._tx() as conn:
            status = self._status(conn, job_id)
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
    def mark_running(self, job_id: str) -> Job:
        """Start an attempt: queued (or running, on redelivery) -> running, ``attempts`` + 1.

        A job that is already finished or cancelled is returned unchanged; the runner then stops.
        A job whose cancellation was requested while it waited is cancelled here.
        """
        now = _now()
        with self._tx() as conn:
            status = self._status(conn, job_id)
            if not status.terminal:
                row = conn.execute("SELECT cancel_requested FROM jobs WHERE id=?", (job_id,)).fetchone()
                if row["cancel_requested"]:
                    conn.execute(
                        "UPDATE jobs SET status=?, finished_at=?, updated_at=? WHERE id=?",
                        (JobStatus.cancelled.value, now, now, job_id),
                    )
                else:
                    conn.execute(
                        "UPDATE jobs SET status=?, attempts=attempts+1, error=NULL, started_at=?, "
                        "updated_at=? WHERE id=?",
                        (JobStatus.running.value, now, now, job_id),
                    )
            return self._read(conn, job_id)

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
            self._row(conn, job_id)
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
            if not self._status(conn, job_id).terminal:
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
            if self._status(conn, job_id).terminal:
                return False
            self._finish(conn, job_id, JobStatus.failed, _now(), message)
            return True

    def cancel(self, job_id: str) -> bool:
        """Mark a job cancelled unless it already finished; True when it changed."""
        with self._tx() as conn:
            if self._status(conn, job_id).terminal:
                return False
            conn.execute("UPDATE jobs SET cancel_requested=1 WHERE id=?", (job_id,))
            self._finish(conn, job_id, JobStatus.cancelled, _now(), None)
            return True

    def note_retry(self, job_id: str, message: str) -> bool:
        """A transient error: the job goes back to queued with ``message`` until the retry starts."""
        with self._tx() as conn:
            if self._status(conn, job_id).terminal:
                return False
            conn.execute(
                "UPDATE jobs SET status=?, error=?, updated_at=? WHERE id=?",
                (JobStatus.queued.value, message, _now(), job_id),
            )
            return True

    def is_cancelled(self, job_id: str) -> bool:
        """True once cancellation was requested (or the job is cancelled)."""
        with self._tx(write=False) as conn:
            row = self._row(conn, job_id)
            return bool(row["cancel_requested"]) or row["status"] == JobStatus.cancelled.value

    # --- reads ---------------------------------------------------------------------------------
    def get(self, job_id: str, *, entities: bool = True) -> Job | None:
        """The job, with per-entity results when ``entities``; None when unknown."""
        with self._tx(write=False) as conn:
            try:
                return self._read(conn, job_id, entities=entities)
            except JobNotFoundError:
                return None

    def list(self, *, limit: int = 50, offset: int = 0, status: JobStatus | None = None) -> JobPage:
        """Jobs newest first, ``limit`` (1-500) from ``offset``; ``total`` counts all matching jobs."""
        limit = max(1, min(int(limit), MAX_PAGE))
        offset = max(0, int(offset))
        where, params = ("WHERE status=?", [status.value]) if status is not None else ("", [])
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
        """Sums over every job: triples written, new nodes, merges, entities done and failed."""
        with self._tx(write=False) as conn:
            jobs = conn.execute(
                "SELECT COALESCE(SUM(triples_written), 0), COALESCE(SUM(new_nodes), 0), "
                "COALESCE(SUM(merged), 0) FROM jobs"
            ).fetchone()
            entities = dict(
                conn.execute("SELECT status, COUNT(*) FROM job_entities GROUP BY status").fetchall()
            )
        return {
            "triples_written": jobs[0],
            "new_nodes": jobs[1],
            "merged": jobs[2],
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
    def _row(conn: sqlite3.Connection, job_id: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(f"no job {job_id!r}; `GET /v1/jobs` lists the jobs")
        return row

    def _status(self, conn: sqlite3.Connection, job_id: str) -> JobStatus:
        return JobStatus(self._row(conn, job_id)["status"])

    @staticmethod
    def _finish(
        conn: sqlite3.Connection, job_id: str, status: JobStatus, now: str, error: str | None
    ) -> None:
        conn.execute(
            "UPDATE jobs SET status=?, error=?, finished_at=?, updated_at=?, "
            "duration_s=CASE WHEN started_at IS NULL "
            "THEN NULL ELSE (julianday(?) - julianday(started_at)) * 86400.0 END WHERE id=?",
            (status.value, error, now, now, now, job_id),
        )

    @staticmethod
    def _entity_counts(conn: sqlite3.Connection, job_ids: Sequence[str]) -> dict[str, dict[str, int]]:
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

    def _read(self, conn: sqlite3.Connection, job_id: str, *, entities: bool = False) -> Job:
        return self._jobs(conn, [self._row(conn, job_id)], entities=entities)[0]

    def _jobs(self, conn: sqlite3.Connection, rows: Sequence[sqlite3.Row], *, entities: bool) -> list[Job]:
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
                    created_at=r["created_at"],
                    updated_at=r["updated_at"],
                    started_at=r["started_at"],
                    finished_at=r["finished_at"],
                    entities=results.get(r["id"], []) if entities else None,
                )
            )
        return jobs


__all__ = ["BatchCounts", "EntityOutcome", "JobNotFoundError", "JobStore", "JobStoreUnavailableError"]
