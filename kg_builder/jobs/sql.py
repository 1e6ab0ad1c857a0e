"""The job store's two databases behind one small interface: SQLite (embedded default) and PostgreSQL.

Why a dialect layer of our own rather than SQLAlchemy Core: the job store is about twenty short,
hand-written statements whose semantics depend on each database's locking (SQLite's
``BEGIN IMMEDIATE`` versus PostgreSQL's row locks), not on portable SQL generation. What differs is
small and listed here: placeholders (``?`` versus ``%s``), the row lock suffix (``FOR UPDATE``,
nothing in SQLite where ``BEGIN IMMEDIATE`` already holds the only write lock), how a duration is
computed from two ISO timestamps, column types (``REAL`` is 4 bytes in PostgreSQL: epoch
heartbeats need ``DOUBLE PRECISION``), and where the schema version lives (``PRAGMA user_version``
versus a one-row table). SQLAlchemy would add a dependency and an abstraction over exactly the
transaction handling that must stay explicit.

Every statement in :mod:`kg_builder.jobs.job_store` is written with ``?`` placeholders and no literal
``?`` or ``%`` characters, so the PostgreSQL connection rewrites ``?`` to ``%s`` verbatim.

SQLite (:class:`SqliteBackend`): one short-lived connection per transaction (any thread or process
may call), WAL journal, ``synchronous=NORMAL`` (see below), ``BEGIN IMMEDIATE`` for writes, a 30 s
busy timeout. Writers of one process take a process-wide mutex before ``BEGIN IMMEDIATE``: SQLite
admits one writer at a time anyway, and its busy handler *sleeps* (up to 100 ms a try) instead of
queueing, so 100 threads submitting at once spend most of their time asleep while the file is
idle. The mutex only orders writers that would otherwise poll the same file lock; readers never
take it, and it is held for the few milliseconds of one transaction, never across a request.

Durability trade-off (``synchronous=NORMAL`` under WAL): a commit is written to the WAL without an
``fsync``; the WAL is synced at each checkpoint. A committed job survives any crash of the API or
worker *processes* (the data is in the OS page cache, which the kernel writes out); only a power
cut or kernel crash can lose the last commits before the next checkpoint (the database stays
consistent, it only rolls back to an earlier commit). ``FULL`` paid one ``fsync`` per submitted job,
which under a burst of submissions was the throughput limit. A deployment that needs power-cut
durability per job should use PostgreSQL (``KGFORGE_JOBS_URL``), whose commit is synced.

PostgreSQL (:class:`PostgresBackend`): a :class:`psycopg_pool.ConnectionPool` per URL and process
(a forked Celery worker opens its own), ``READ COMMITTED`` write transactions in which every
read-then-write first locks the job row with ``SELECT ... FOR UPDATE`` (what ``BEGIN IMMEDIATE``
gave in SQLite, per job instead of per file), ``REPEATABLE READ READ ONLY`` read transactions (one
consistent snapshot, like a SQLite read transaction), ``lock_timeout`` 30 s, and schema changes under
a transaction-scoped advisory lock so that processes starting together migrate once. Connection
errors, pool timeouts, lock timeouts and deadlocks raise ``JobStoreUnavailableError`` (retryable).
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

BUSY_TIMEOUT_S = 30.0
POOL_MAX_SIZE = 10  # per process; transactions are a few milliseconds, so a few connections suffice
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class BackendError(Exception):
    """The database could not be reached or stayed locked; the store turns it into a retryable error."""


class Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...


class Backend(Protocol):
    name: str
    for_update: str  # appended to a SELECT that reads a row the transaction then writes
    where: str  # the file or the URL without its password, for messages

    def tx(self, write: bool = True) -> Any: ...

    def ensure_schema(self, version: int, tables: Sequence[str], columns: Sequence[str],
                      after: Sequence[str]) -> None: ...

    def duration_s(self, end: str, start: str) -> str: ...

    def close(self) -> None: ...


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def redact(url: str) -> str:
    """``url`` without its password (for logs and error messages)."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


# --- SQLite --------------------------------------------------------------------------------------

_SQLITE_WRITERS: dict[str, threading.Lock] = {}
_SQLITE_WRITERS_LOCK = threading.Lock()


def _writer_lock(path: Path) -> threading.Lock:
    key = str(path)
    with _SQLITE_WRITERS_LOCK:
        return _SQLITE_WRITERS.setdefault(key, threading.Lock())


class SqliteBackend:
    name = "sqlite"
    for_update = ""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.where = str(self.path)
        self._writers = _writer_lock(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BackendError(str(e)) from e

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def tx(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        try:
            with self._connection() as conn:
                if write and not self._writers.acquire(timeout=BUSY_TIMEOUT_S):
                    raise BackendError(f"no write turn on {self.path} within {BUSY_TIMEOUT_S:.0f} s")
                try:
                    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    try:
                        yield conn
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
                finally:
                    if write:
                        self._writers.release()
        except sqlite3.OperationalError as e:
            raise BackendError(str(e)) from e

    def ensure_schema(self, version: int, tables: Sequence[str], columns: Sequence[str],
                      after: Sequence[str]) -> None:
        try:
            with self._connection() as conn:
                # WAL is a property of the file; setting it once is enough, repeating it is harmless.
                conn.execute("PRAGMA journal_mode=WAL")
                if conn.execute("PRAGMA user_version").fetchone()[0] >= version:
                    return
                conn.execute("BEGIN IMMEDIATE")
                if conn.execute("PRAGMA user_version").fetchone()[0] < version:
                    for statement in tables:
                        conn.execute(statement)
                    have = {r["name"] for r in conn.execute("PRAGMA table_info(jobs)")}
                    for column in columns:
                        if column.split()[0] not in have:
                            conn.execute(f"ALTER TABLE jobs ADD COLUMN {column}")
                    for statement in after:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={int(version)}")
                conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise BackendError(str(e)) from e

    @staticmethod
    def duration_s(end: str, start: str) -> str:
        return f"(julianday({end}) - julianday({start})) * 86400.0"

    def close(self) -> None:  # nothing held between calls
        pass


# --- PostgreSQL ----------------------------------------------------------------------------------

class _Row(tuple):
    """A result row readable by position and by column name, like ``sqlite3.Row``."""

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> _Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:
        return tuple.__getitem__(self, self._index[key] if isinstance(key, str) else key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], _Row]:
    index = {c.name: i for i, c in enumerate(cursor.description or ())}
    return lambda values: _Row(values, index)


class _PgConnection:
    """A psycopg connection that speaks the store's ``?`` placeholders."""

    def __init__(self, conn: Any):
        self._conn = conn

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        cursor = self._conn.cursor()
        cursor.executemany(self._sql(sql), rows)
        return cursor


_POOLS: dict[tuple[str, int], Any] = {}
_POOLS_LOCK = threading.Lock()


def _configure(conn: Any) -> None:
    conn.execute(f"SET lock_timeout = '{int(BUSY_TIMEOUT_S * 1000)}ms'")
    conn.commit()


def _pool(url: str) -> Any:
    """The process's pool for ``url`` (a forked child makes its own: sockets are not shareable)."""
    from psycopg_pool import ConnectionPool

    key = (url, os.getpid())
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None or pool.closed:
            pool = ConnectionPool(
                url, min_size=1, max_size=POOL_MAX_SIZE, timeout=BUSY_TIMEOUT_S, open=True,
                kwargs={"row_factory": _row_factory, "connect_timeout": 10}, configure=_configure,
                check=ConnectionPool.check_connection, name=f"kgforge-jobs-{os.getpid()}",
            )
            _POOLS[key] = pool
        return pool


class PostgresBackend:
    name = "postgresql"
    for_update = " FOR UPDATE"

    def __init__(self, url: str):
        try:
            import psycopg  # noqa: F401
        except ImportError as e:  # pragma: no cover - a runtime dependency
            raise BackendError("KGFORGE_JOBS_URL needs psycopg (pip install 'psycopg[binary]')") from e
        self.url = url
        self.where = redact(url)
        _pool(url)  # opens it (connections are made in the background)

    @contextmanager
    def tx(self, write: bool = True) -> Iterator[_PgConnection]:
        import psycopg

        try:
            with _pool(self.url).connection() as conn:  # commits at the end, rolls back on an exception
                if not write:
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield _PgConnection(conn)
        except psycopg.OperationalError as e:  # connection lost, pool timeout, lock timeout, deadlock
            raise BackendError(str(e).strip()) from e

    def ensure_schema(self, version: int, tables: Sequence[str], columns: Sequence[str],
                      after: Sequence[str]) -> None:
        with self.tx() as conn:
            if conn.execute("SELECT to_regclass('jobs_schema')").fetchone()[0] is not None:
                row = conn.execute("SELECT max(version) FROM jobs_schema").fetchone()
                if row[0] is not None and row[0] >= version:
                    return
        with self.tx() as conn:
            # One migration at a time per schema (the lock ends with the transaction).
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.kgforge_jobs'))")
            conn.execute("CREATE TABLE IF NOT EXISTS jobs_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) FROM jobs_schema").fetchone()
            if row[0] is not None and row[0] >= version:
                return
            for statement in tables:
                conn.execute(statement)
            for column in columns:
                conn.execute(f"ALTER TABLE jobs ADD COLUMN IF NOT EXISTS {column}")
            for statement in after:
                conn.execute(statement)
            conn.execute("DELETE FROM jobs_schema")
            conn.execute("INSERT INTO jobs_schema (version) VALUES (?)", (int(version),))

    @staticmethod
    def duration_s(end: str, start: str) -> str:
        return f"EXTRACT(EPOCH FROM (CAST({end} AS timestamptz) - CAST({start} AS timestamptz)))::double precision"

    def close(self) -> None:
        """Close this process's pool for the URL (other stores on the same URL reopen it on use)."""
        close_pool(self.url)


def open_backend(target: Path | str) -> SqliteBackend | PostgresBackend:
    """A PostgreSQL backend for a ``postgresql://`` URL, else SQLite on the file ``target``."""
    return PostgresBackend(str(target)) if is_postgres_url(target) else SqliteBackend(target)


def close_pool(url: str) -> None:
    """Close this process's pool for ``url``, if any (tests drop their schema after this)."""
    with _POOLS_LOCK:
        pool = _POOLS.pop((url, os.getpid()), None)
    if pool is not None:
        pool.close()


__all__ = ["BUSY_TIMEOUT_S", "Backend", "BackendError", "PostgresBackend", "SqliteBackend", "close_pool",
           "is_postgres_url", "open_backend", "redact"]
