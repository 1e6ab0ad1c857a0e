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
from dataclasses import dataclass
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


__all__ = ["ClaimAction", "ClaimDecision", "Heartbeat", "decide_claim", "describe", "lease_alive", "make_owner", "parse_owner", "process_exists"]
