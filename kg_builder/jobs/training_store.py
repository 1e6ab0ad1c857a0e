"""TrainingStore: the durable state of training runs, in the job database (SQLite or PostgreSQL).

A training run is one long task (pretraining, fine-tuning, a recommender student) with batch-level
progress, not a list of entities, so it is its own small resource next to the entity jobs of
:mod:`kg_builder.jobs.job_store`, sharing what those jobs built: the same database
(``KGFORGE_JOBS_URL`` or ``KGFORGE_JOBS_DB``) through the same dialect layer
(:mod:`kg_builder.jobs.sql`: ``?`` placeholders, ``FOR UPDATE`` row locks on PostgreSQL where SQLite
holds its file write lock), the same leases (:mod:`kg_builder.jobs.lease`), the same statuses
(:class:`~kg_builder.jobs.models.JobStatus`: queued, running, succeeded, failed, cancelled) and the
same client ownership (``client``: the submitting key's fingerprint, NULL without a key).

Table ``training_runs`` (one row per run): ``kind``, ``params`` (JSON, validated by the kind's model
before it is stored), ``status``, ``progress`` (JSON, :class:`TrainingProgress`: stage, epoch,
batch, total_batches, loss, validation, elapsed_s, message, updated_at), ``result`` (JSON, what the
kind returned), ``error``, ``client``, ``cancel_requested``, ``attempts``, ``worker_deaths``, the
lease (``owner`` = ``host:pid:task``, ``heartbeat`` in epoch seconds) and the timestamps
(``created_at``, ``updated_at``, ``started_at``, ``finished_at``, ``duration_s``).

Schema: its own version row in ``training_runs_schema`` (both databases), independent of the jobs'
``PRAGMA user_version`` / ``jobs_schema``, so either store can migrate without the other. Columns
added by later versions go in :data:`_ADDED_COLUMNS` and are added in place to older tables, like
:mod:`~kg_builder.jobs.job_store` does for ``jobs``. PostgreSQL migrations run under an advisory lock.

Leases: :meth:`TrainingStore.claim` starts an attempt only when no live lease is held elsewhere, so a
redelivered task (broker redelivery after a lost worker, a duplicate message) does not train twice;
taking over from a dead owner counts a worker death (the run starts again from the beginning: a
training run keeps no checkpoint) and past ``max_deliveries`` deaths the run fails. Every write of
the runner names its owner, so a worker that lost its lease cannot overwrite the new owner's run.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kg_builder.settings import Settings

from . import lease
from .job_store import JobNotFoundError, JobStoreUnavailableError
from .models import JobStatus
from .sql import Backend, BackendError, Connection, is_postgres_url, open_backend, redact

log = logging.getLogger(__name__)

TRAINING_SCHEMA_VERSION = 1
MAX_PAGE = 500

_TABLES_TEMPLATE = """
CREATE TABLE IF NOT EXISTS training_runs (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    params           TEXT NOT NULL,
    status           TEXT NOT NULL,
    progress         TEXT,
    result           TEXT,
    error            TEXT,
    client           TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    worker_deaths    INTEGER NOT NULL DEFAULT 0,
    owner            TEXT,
    heartbeat        {real},
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    duration_s       {real}
);
CREATE INDEX IF NOT EXISTS training_runs_by_client ON training_runs (client, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS training_runs_by_status ON training_runs (status)
"""
#: Columns later schema versions add to an existing ``training_runs`` table (none yet: version 1).
_ADDED_COLUMNS: tuple[str, ...] = ()
_REAL = {"sqlite": "REAL", "postgresql": "DOUBLE PRECISION"}


class TrainingRunNotFoundError(JobNotFoundError):
    """No training run with that id (or not the caller's); the API answers 404 (``api/errors.py``)."""


class TrainingProgress(BaseModel):
    """Where a run is: the latest event of its training function, written at most every ~2 s."""

    stage: str | None = Field(None, description="export, pretrain, finetune, scratch, train, save, ... "
                                                "(what the kind is doing now).")
    epoch: int | None = None
    batch: int | None = Field(None, description="Batches done in this stage.")
    total_batches: int | None = Field(None, description="The stage's batch budget (early stopping may end "
                                                        "sooner).")
    loss: float | None = Field(None, description="The latest batch's training loss.")
    validation: dict[str, float] | None = Field(None, description="The latest validation score(s), e.g. "
                                                                  "``holdout_ndcg@10``, when the kind reports one.")
    elapsed_s: float | None = Field(None, description="Seconds since the attempt started.")
    message: str | None = None
    updated_at: str | None = None


class TrainingRun(BaseModel):
    """One training run, as the store returns it and the API serialises it."""

    model_config = ConfigDict(protected_namespaces=())

    id: str
    kind: str
    params: dict[str, Any]
    status: JobStatus
    progress: TrainingProgress = Field(default_factory=TrainingProgress)
    result: dict[str, Any] | None = None
    error: str | None = None
    cancel_requested: bool = False
    attempts: int = 0
    worker_deaths: int = 0
    owner: str | None = None
    heartbeat_at: datetime | None = None
    created_at: str
    updated_at: str
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None


class TrainingRunPage(BaseModel):
    items: list[TrainingRun]
    total: int
    limit: int
    offset: int


@dataclass
class TrainingClaim:
    """``claimed`` True: this owner now runs the run; otherwise ``reason`` says why not."""

    run: TrainingRun
    claimed: bool
    reason: str = ""


@dataclass
class ProgressAck:
    """What writing progress learned: whether the writer still holds the run, and whether it was
    asked to stop."""

    held: bool
    cancel_requested: bool


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _json(value: Any) -> str:
    """JSON with NaN/inf as null (PostgreSQL and browsers reject them) and unknown objects as strings."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), default=str)


class TrainingStore:
    """Durable training-run state (see the module docstring).

    Example::

        runs = TrainingStore.from_settings(get_settings())
        run = runs.create("embed_finetune", {"dataset": "amazon18_scientific"}, client=None)
        runs.get(run.id).status   # JobStatus.queued
    """

    def __init__(self, target: Path | str, *, lease_s: float = 60.0, max_deliveries: int = 3):
        """``target``: a ``postgresql://`` URL, or the SQLite file (created with its folder)."""
        self.lease_s = float(lease_s)
        self.max_deliveries = int(max_deliveries)
        postgres = is_postgres_url(target)
        self.path: Path | str = redact(str(target)) if postgres else Path(target)
        try:
            self._db: Backend = open_backend(target)
            self._ensure_schema()
        except BackendError as e:
            setting = "KGFORGE_JOBS_URL and that the server is up" if postgres else \
                "KGFORGE_JOBS_DB and that its folder is writable"
            raise JobStoreUnavailableError(f"cannot open the job database {self.path}: {e}; check {setting}") from e

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainingStore:
        """The job database of ``settings`` (PostgreSQL when ``KGFORGE_JOBS_URL`` is set)."""
        return cls(settings.jobs_url or settings.jobs_db_path, lease_s=settings.job_lease_s,
                   max_deliveries=settings.task_max_deliveries)

    @property
    def backend(self) -> str:
        return self._db.name

    def close(self) -> None:
        self._db.close()

    # --- schema --------------------------------------------------------------------------------
    def _ensure_schema(self) -> None:
        name = self._db.name
        tables = [s.strip() for s in _TABLES_TEMPLATE.format(real=_REAL[name]).split(";") if s.strip()]
        with self._db.tx(write=False) as conn:
            if self._version(conn) >= TRAINING_SCHEMA_VERSION:
                return
        with self._db.tx(write=True) as conn:  # SQLite: BEGIN IMMEDIATE serialises migrations
            if name == "postgresql":
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.kgforge_training'))")
            conn.execute("CREATE TABLE IF NOT EXISTS training_runs_schema (version INTEGER NOT NULL)")
            if self._version(conn) >= TRAINING_SCHEMA_VERSION:
                return
            for statement in tables:
                conn.execute(statement)
            have = self._columns(conn)
            for column in _ADDED_COLUMNS:
                if column.split()[0] not in have:
                    conn.execute(f"ALTER TABLE training_runs ADD COLUMN {column.format(real=_REAL[name])}")
            conn.execute("DELETE FROM training_runs_schema")
            conn.execute("INSERT INTO training_runs_schema (version) VALUES (?)", (TRAINING_SCHEMA_VERSION,))
        log.info("training-run tables at schema version %d in %s", TRAINING_SCHEMA_VERSION, self.path)

    def _version(self, conn: Connection) -> int:
        if self._db.name == "postgresql":
            if conn.execute("SELECT to_regclass('training_runs_schema')").fetchone()[0] is None:
                return 0
        elif conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='training_runs_schema'"
                          ).fetchone() is None:
            return 0
        row = conn.execute("SELECT max(version) FROM training_runs_schema").fetchone()
        return int(row[0] or 0)

    def _columns(self, conn: Connection) -> set[str]:
        if self._db.name == "postgresql":
            rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name='training_runs' "
                                "AND table_schema=current_schema()").fetchall()
            return {r[0] for r in rows}
        return {r["name"] for r in conn.execute("PRAGMA table_info(training_runs)")}

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Connection]:
        try:
            with self._db.tx(write) as conn:
                yield conn
        except BackendError as e:
            raise JobStoreUnavailableError(f"job database {self.path} unavailable: {e}") from e

    # --- writes: the API -----------------------------------------------------------------------
    def create(self, kind: str, params: dict[str, Any], *, client: str | None = None) -> TrainingRun:
        """Persist a new queued run of ``kind`` with validated ``params``; returns it."""
        run_id = str(uuid.uuid4())
        now = _now()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO training_runs (id, kind, params, status, client, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, kind, _json(params), JobStatus.queued.value, client, now, now),
            )
            return self._read(conn, run_id)

    def request_cancel(self, run_id: str, *, client: str | None = None) -> TrainingRun:
        """Cancel a queued run at once; ask a running one to stop at its next progress write.

        A finished run is returned unchanged (the caller decides what that means). With ``client``,
        another client's run is not found (:class:`TrainingRunNotFoundError`).
        """
        now = _now()
        with self._tx() as conn:
            row = self._row(conn, run_id, lock=True)
            if client is not None and row["client"] != client:
                raise self._not_found(run_id)
            status = JobStatus(row["status"])
            if status is JobStatus.queued:
                self._finish(conn, run_id, JobStatus.cancelled, now, None, cancel=True)
            elif status is JobStatus.running:
                conn.execute("UPDATE training_runs SET cancel_requested=1, updated_at=? WHERE id=?", (now, run_id))
            return self._read(conn, run_id)

    def note_enqueue_error(self, run_id: str, message: str) -> None:
        """Record that a run could not be handed to the broker: it fails (nothing would run it)."""
        self.fail(run_id, message)

    # --- writes: the runner --------------------------------------------------------------------
    def claim(self, run_id: str, owner: str) -> TrainingClaim:
        """Start an attempt: queued (or running, on redelivery) -> running under ``owner``'s lease.

        Not claimed, and the run left untouched, when it is finished or another owner's lease is
        alive; a run whose cancellation was requested is cancelled here; taking over from a dead
        owner counts a worker death, and past ``max_deliveries`` deaths the run fails.
        """
        now_s = time.time()
        now = _now()
        with self._tx() as conn:
            row = self._row(conn, run_id, lock=True)
            decision = lease.decide_claim(row, owner=owner, lease_s=self.lease_s, max_deliveries=self.max_deliveries,
                                          now=now_s, label=f"training run {run_id}")
            if decision.action is lease.ClaimAction.cancel:
                self._finish(conn, run_id, JobStatus.cancelled, now, None)
            elif decision.action is lease.ClaimAction.fail:
                conn.execute("UPDATE training_runs SET worker_deaths=? WHERE id=?", (decision.deaths, run_id))
                self._finish(conn, run_id, JobStatus.failed, now, self._deaths_message(decision.deaths))
            if decision.action is not lease.ClaimAction.take:
                return TrainingClaim(self._read(conn, run_id), False, decision.reason)
            conn.execute(
                "UPDATE training_runs SET status=?, attempts=attempts+1, error=NULL, progress=NULL, started_at=?, "
                "updated_at=?, owner=?, heartbeat=?, worker_deaths=? WHERE id=?",
                (JobStatus.running.value, now, now, owner, now_s, decision.deaths, run_id),
            )
            return TrainingClaim(self._read(conn, run_id), True)

    def _deaths_message(self, deaths: int) -> str:
        return (f"worker died {deaths} times while running this training run (more than "
                f"KGFORGE_TASK_MAX_DELIVERIES={self.max_deliveries}); it may crash its worker "
                "(out of memory?): see the worker logs, lower the budget and submit it again")

    def reap(self, *, broker_runs: set[str] | None, queued_grace_s: float, reason: str | None = None,
             count_deaths: bool = True) -> lease.ReapReport:
        """Orphaned ``running`` runs and stuck ``queued`` ones made runnable again (or failed), in one
        transaction, by the job reaper's rule (:func:`kg_builder.jobs.lease.reap_rows`);
        ``broker_runs``: the run ids the broker holds (None when it could not be asked)."""
        with self._tx() as conn:
            return lease.reap_rows(conn, table="training_runs", for_update=self._db.for_update,
                                   lease_s=self.lease_s, max_deliveries=self.max_deliveries, broker_ids=broker_runs,
                                   queued_grace_s=queued_grace_s, reason=reason, count_deaths=count_deaths,
                                   finish=self._finish, deaths_message=self._deaths_message, now=_now())

    def heartbeat(self, run_id: str, owner: str) -> bool:
        """Refresh ``owner``'s lease; False when it no longer holds the run."""
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE training_runs SET heartbeat=? WHERE id=? AND owner=? AND status=?",
                (time.time(), run_id, owner, JobStatus.running.value),
            )
            return cursor.rowcount == 1

    def update_progress(self, run_id: str, owner: str, progress: TrainingProgress | dict[str, Any]) -> ProgressAck:
        """Write ``progress`` (and refresh the lease) if ``owner`` still holds the run; in the same
        transaction, learn whether cancellation was requested."""
        if isinstance(progress, dict):
            progress = TrainingProgress.model_validate(progress)
        now = _now()
        progress = progress.model_copy(update={"updated_at": now})
        with self._tx() as conn:
            row = self._row(conn, run_id, lock=True)
            held = row["owner"] == owner and row["status"] == JobStatus.running.value
            if held:
                conn.execute("UPDATE training_runs SET progress=?, heartbeat=?, updated_at=? WHERE id=?",
                             (_json(progress.model_dump()), time.time(), now, run_id))
            return ProgressAck(held=held, cancel_requested=bool(row["cancel_requested"]))

    def succeed(self, run_id: str, owner: str, result: dict[str, Any],
                progress: TrainingProgress | None = None) -> bool:
        """running -> succeeded with ``result`` (and the last progress) if ``owner`` holds the run."""
        return self._end(run_id, owner, JobStatus.succeeded, None, result=result, progress=progress)

    def finish_cancelled(self, run_id: str, owner: str, progress: TrainingProgress | None = None) -> bool:
        """running -> cancelled (the runner stopped on a cancellation request) if ``owner`` holds it."""
        return self._end(run_id, owner, JobStatus.cancelled, None, progress=progress)

    def fail(self, run_id: str, message: str, *, owner: str | None = None,
             progress: TrainingProgress | None = None) -> bool:
        """Mark a run failed with ``message`` unless it already finished (and, with ``owner``, unless
        another owner holds it); True when it changed."""
        return self._end(run_id, owner, JobStatus.failed, message, progress=progress)

    def note_retry(self, run_id: str, message: str) -> bool:
        """A transient error: the run goes back to queued with ``message`` until the retry starts."""
        with self._tx() as conn:
            if JobStatus(self._row(conn, run_id, lock=True)["status"]).terminal:
                return False
            conn.execute(
                "UPDATE training_runs SET status=?, error=?, owner=NULL, heartbeat=NULL, updated_at=? WHERE id=?",
                (JobStatus.queued.value, message, _now(), run_id),
            )
            return True

    def release(self, run_id: str, owner: str) -> bool:
        """Give up ``owner``'s lease without finishing (a redelivery claims it at once, no death counted)."""
        with self._tx() as conn:
            cursor = conn.execute("UPDATE training_runs SET owner=NULL, heartbeat=NULL, updated_at=? "
                                  "WHERE id=? AND owner=?", (_now(), run_id, owner))
            return cursor.rowcount == 1

    def _end(self, run_id: str, owner: str | None, status: JobStatus, error: str | None, *,
             result: dict[str, Any] | None = None, progress: TrainingProgress | None = None) -> bool:
        now = _now()
        with self._tx() as conn:
            row = self._row(conn, run_id, lock=True)
            if JobStatus(row["status"]).terminal or (owner is not None and row["owner"] != owner):
                return False
            if progress is not None:
                conn.execute("UPDATE training_runs SET progress=? WHERE id=?",
                             (_json(progress.model_copy(update={"updated_at": now}).model_dump()), run_id))
            if result is not None:
                conn.execute("UPDATE training_runs SET result=? WHERE id=?", (_json(result), run_id))
            self._finish(conn, run_id, status, now, error)
            return True

    # --- reads ---------------------------------------------------------------------------------
    def get(self, run_id: str, *, client: str | None = None) -> TrainingRun | None:
        """The run; None when unknown (or, with ``client``, another client's)."""
        with self._tx(write=False) as conn:
            row = conn.execute("SELECT * FROM training_runs WHERE id=?", (run_id,)).fetchone()
            if row is None or (client is not None and row["client"] != client):
                return None
            return self._model(row)

    def is_cancel_requested(self, run_id: str) -> bool:
        with self._tx(write=False) as conn:
            row = self._row(conn, run_id)
            return bool(row["cancel_requested"]) or row["status"] == JobStatus.cancelled.value

    def list(self, *, limit: int = 50, offset: int = 0, status: JobStatus | None = None, kind: str | None = None,
             client: str | None = None) -> TrainingRunPage:
        """Runs newest first, ``limit`` (1-500) from ``offset``; with ``client`` only that client's."""
        limit = max(1, min(int(limit), MAX_PAGE))
        offset = max(0, int(offset))
        conditions, params = [], []
        for column, value in (("status", status.value if status is not None else None), ("kind", kind),
                              ("client", client)):
            if value is not None:
                conditions.append(f"{column}=?")
                params.append(value)
        where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
        with self._tx(write=False) as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM training_runs {where}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT * FROM training_runs {where} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return TrainingRunPage(items=[self._model(r) for r in rows], total=total, limit=limit, offset=offset)

    # --- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _not_found(run_id: str) -> TrainingRunNotFoundError:
        return TrainingRunNotFoundError(f"no training run {run_id!r}; `GET /v1/training` lists the runs")

    def _row(self, conn: Connection, run_id: str, *, lock: bool = False) -> Any:
        row = conn.execute("SELECT * FROM training_runs WHERE id=?" + (self._db.for_update if lock else ""),
                           (run_id,)).fetchone()
        if row is None:
            raise self._not_found(run_id)
        return row

    def _read(self, conn: Connection, run_id: str) -> TrainingRun:
        return self._model(self._row(conn, run_id))

    def _finish(self, conn: Connection, run_id: str, status: JobStatus, now: str, error: str | None, *,
                cancel: bool = False) -> None:
        conn.execute(
            "UPDATE training_runs SET status=?, error=?, finished_at=?, updated_at=?, owner=NULL, heartbeat=NULL, "
            + ("cancel_requested=1, " if cancel else "")
            + "duration_s=CASE WHEN started_at IS NULL "
            f"THEN NULL ELSE {self._db.duration_s('?', 'started_at')} END WHERE id=?",
            (status.value, error, now, now, now, run_id),
        )

    @staticmethod
    def _model(r: Any) -> TrainingRun:
        return TrainingRun(
            id=r["id"], kind=r["kind"], params=json.loads(r["params"]), status=JobStatus(r["status"]),
            progress=TrainingProgress.model_validate_json(r["progress"]) if r["progress"] else TrainingProgress(),
            result=json.loads(r["result"]) if r["result"] else None, error=r["error"],
            cancel_requested=bool(r["cancel_requested"]), attempts=r["attempts"], worker_deaths=r["worker_deaths"],
            owner=r["owner"],
            heartbeat_at=datetime.fromtimestamp(r["heartbeat"], UTC) if r["heartbeat"] is not None else None,
            created_at=r["created_at"], updated_at=r["updated_at"], started_at=r["started_at"],
            finished_at=r["finished_at"], duration_s=r["duration_s"],
        )


__all__ = ["ProgressAck", "TrainingClaim", "TrainingProgress", "TrainingRun", "TrainingRunNotFoundError",
           "TrainingRunPage", "TrainingStore"]
