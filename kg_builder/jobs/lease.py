"""Job leases: who runs a job, and whether that worker is still alive.

A running job records an *owner* (``host:pid:task``: the machine, the process that runs the task,
the Celery task id) and a heartbeat that the runner refreshes every ``lease_s / 4`` seconds
(:class:`Heartbeat`). A lease is **alive** while the heartbeat is younger than ``lease_s`` and,
when the owner is on this machine, its process still exists (a worker killed with SIGKILL is seen
at once, without waiting for the heartbeat to age). A second delivery of the task (the broker's
redelivery, or a re-enqueue by the reaper) finds a live lease and leaves the job alone; a dead one
is taken over (and counted as a worker death, see ``KGFORGE_TASK_MAX_DELIVERIES``).

Process ids are checked only for owners on this host (``socket.gethostname()``); under compose
each container has its own host name, so there only the heartbeat counts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from kg_builder.graphdb.embedded import process_alive

from .models import JobStatus

log = logging.getLogger(__name__)


def make_owner(task_id: str | None = None) -> str:
    """``host:pid:task`` of the calling process (a random task id when none is given)."""
    return f"{socket.gethostname()}:{os.getpid()}:{task_id or uuid.uuid4().hex}"


def parse_owner(owner: str) -> tuple[str, int | None, str]:
    """(host, pid, task) of an owner string; pid None when it is not a number."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3:
        return owner, None, ""
    host, pid, task = parts
    return host, int(pid) if pid.isdigit() else None, task


#: True when a process exists on this machine and is not a zombie (the database launcher's check).
process_exists = process_alive


def lease_alive(owner: str | None, heartbeat: float | None, *, lease_s: float, now: float | None = None) -> bool:
    """Whether ``owner``'s lease (last heartbeat at ``heartbeat``, epoch seconds) still holds."""
    if not owner or heartbeat is None:
        return False
    now = time.time() if now is None else now
    if now - heartbeat > lease_s:
        return False
    host, pid, _ = parse_owner(owner)
    if host == socket.gethostname() and pid is not None:
        return process_exists(pid)
    return True


def describe(owner: str | None, heartbeat: float | None, now: float | None = None) -> str:
    """``owner X, last heartbeat N s ago`` for messages."""
    now = time.time() if now is None else now
    age = f"{now - heartbeat:.0f} s ago" if heartbeat is not None else "never"
    return f"owner {owner or 'none'}, last heartbeat {age}"


class ClaimAction(str, Enum):
    """What a store does with a delivery that asks to run a job or training run."""

    take = "take"        # run it under the new owner (a dead owner's attempt counted in ``deaths``)
    refuse = "refuse"    # leave it alone: finished, or alive under another owner
    cancel = "cancel"    # its cancellation was requested while it waited: cancel it now
    fail = "fail"        # its worker died too often: fail it naming the reason


@dataclass(frozen=True)
class ClaimDecision:
    action: ClaimAction
    reason: str | None
    deaths: int


def decide_claim(row: Mapping[str, Any], *, owner: str, lease_s: float, max_deliveries: int, now: float,
                 label: str) -> ClaimDecision:
    """The claim rule shared by the job and training-run stores (each applies it in its own
    transaction) for a locked ``row`` with ``status``, ``owner``, ``heartbeat``, ``cancel_requested``
    and ``worker_deaths``; ``label`` names it in the log (``job <id>``)."""
    status = JobStatus(row["status"])
    previous, heartbeat, worker_deaths = row["owner"], row["heartbeat"], row["worker_deaths"]
    if status.terminal:
        return ClaimDecision(ClaimAction.refuse, f"it is already {status.value}", worker_deaths)
    other = bool(previous) and previous != owner
    if other and lease_alive(previous, heartbeat, lease_s=lease_s, now=now):
        return ClaimDecision(ClaimAction.refuse, f"its lease is alive elsewhere ({describe(previous, heartbeat, now)})",
                             worker_deaths)
    if row["cancel_requested"]:
        return ClaimDecision(ClaimAction.cancel, "cancellation was requested", worker_deaths)
    deaths = worker_deaths
    if other and status is JobStatus.running:
        deaths += 1
        log.warning("%s: taking over from a dead worker (%s); worker deaths: %d", label,
                    describe(previous, heartbeat, now), deaths)
        if deaths > max_deliveries:
            return ClaimDecision(ClaimAction.fail, "too many worker deaths", deaths)
    return ClaimDecision(ClaimAction.take, None, deaths)


@dataclass
class ReapReport:
    """What one reaper pass did on one table: rows to enqueue again, and rows it failed."""

    requeued: list[str] = field(default_factory=list)  # orphaned running rows, now queued again
    resend: list[str] = field(default_factory=list)  # every row that needs a new broker message
    failed: list[str] = field(default_factory=list)


def reap_rows(conn: Any, *, table: str, for_update: str, lease_s: float, max_deliveries: int,
              broker_ids: set[str] | None, queued_grace_s: float, reason: str | None, count_deaths: bool,
              finish: Callable[[Any, str, JobStatus, str, str | None], None],
              deaths_message: Callable[[int], str], now: str) -> ReapReport:
    """The reaper's rule, in the caller's transaction, for a store table (``jobs``, ``training_runs``)
    with ``id``, ``status``, ``owner``, ``heartbeat``, ``worker_deaths`` and ``updated_at``:

    * **orphaned** ``running`` rows: their lease is dead (worker killed, stopped heartbeating, or
      released without the row going back to the queue for ``queued_grace_s``): back to ``queued``
      with the reason in ``error``, and a worker death counted (``count_deaths``; a clean ``kgforge
      up`` shutdown does not count one); past ``max_deliveries`` deaths the row fails
      (``finish(conn, id, failed, now, deaths_message(deaths))``).
    * **stuck** ``queued`` rows: not updated for ``queued_grace_s`` and absent from the broker
      (``broker_ids``: the ids its queues and unacknowledged messages hold; None when the broker
      could not be asked, then queued rows are left alone).

    Returns the ids that need a new broker message (``resend``): a duplicate message is harmless,
    the lease stops a second run.
    """
    if table not in ("jobs", "training_runs"):
        raise ValueError(f"no reaper rule for table {table!r}")
    report = ReapReport()
    now_s = time.time()
    rows = conn.execute(
        f"SELECT id, status, owner, heartbeat, worker_deaths, updated_at FROM {table} WHERE status IN (?, ?) "
        "ORDER BY id" + for_update,  # one lock order: two reapers cannot deadlock
        (JobStatus.queued.value, JobStatus.running.value),
    ).fetchall()
    for r in rows:
        age = now_s - datetime.fromisoformat(r["updated_at"]).timestamp()
        if r["status"] == JobStatus.running.value:
            if r["owner"] is None:
                if age < queued_grace_s:
                    continue
                why = reason or "it was left running without a worker"
                deaths = r["worker_deaths"]
            elif lease_alive(r["owner"], r["heartbeat"], lease_s=lease_s, now=now_s):
                continue
            else:
                why = reason or f"its worker stopped ({describe(r['owner'], r['heartbeat'], now_s)})"
                deaths = r["worker_deaths"] + (1 if count_deaths else 0)
            if deaths > max_deliveries:
                conn.execute(f"UPDATE {table} SET worker_deaths=? WHERE id=?", (deaths, r["id"]))
                finish(conn, r["id"], JobStatus.failed, now, deaths_message(deaths))
                report.failed.append(r["id"])
                continue
            conn.execute(
                f"UPDATE {table} SET status=?, owner=NULL, heartbeat=NULL, worker_deaths=?, error=?, updated_at=? "
                "WHERE id=?",
                (JobStatus.queued.value, deaths, f"re-queued: {why}", now, r["id"]),
            )
            report.requeued.append(r["id"])
            report.resend.append(r["id"])
        elif broker_ids is not None and r["id"] not in broker_ids and age >= queued_grace_s:
            conn.execute(f"UPDATE {table} SET updated_at=? WHERE id=?", (now, r["id"]))
            report.resend.append(r["id"])
    return report


class Heartbeat:
    """A daemon thread that calls ``beat()`` every ``interval`` seconds until stopped.

    ``beat`` returns False when the lease was lost (another worker took the job over); the thread then
    stops and :attr:`lost` is set, which the runner checks between batches.
    """

    def __init__(self, beat: Callable[[], bool], interval: float, *, name: str = "job-heartbeat"):
        self._beat = beat
        self.interval = max(0.5, interval)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self._beat():
                    self.lost.set()
                    return
            except Exception:  # a locked job database: the next beat tries again
                log.warning("heartbeat failed; trying again in %.1f s", self.interval, exc_info=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["ClaimAction", "ClaimDecision", "Heartbeat", "ReapReport", "decide_claim", "reap_rows", "describe", "lease_alive", "make_owner", "parse_owner", "process_exists"]
