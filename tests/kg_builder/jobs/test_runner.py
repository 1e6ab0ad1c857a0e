"""run_job against the real embedded graph database with tiny trained models (``trained_home``).

Results are read back from the graph (edges carrying the job's id), and a job interrupted after a
batch was written but before it was recorded is replayed to exactly the triples of an
uninterrupted run.
"""

from __future__ import annotations

import kgforge_zoo as zoo_helpers
import pytest

from kg_builder.errors import DatabaseUnavailableError, InvalidInputError
from kg_builder.jobs import JobStatus, JobStore, JobSubmission, run_job
from kg_builder.jobs import runner as runner_module
from kg_builder.jobs.lease import make_owner
from kg_builder.pipeline import KnowledgePipeline, PipelineOptions, SourceEntity
from kg_builder.settings import Settings

pytestmark = pytest.mark.integration


OPTIONS = zoo_helpers.OPTIONS
ENTITIES = [
    SourceEntity(name="sheep"),
    SourceEntity(name="goat"),
    SourceEntity(
        name="Llama", type="animal", description="The llama is an animal that eats hay and lives on a farm."
    ),
]


@pytest.fixture
def settings(trained_home, tmp_path) -> Settings:
    return Settings(home=trained_home, jobs_db=tmp_path / "jobs.sqlite3", job_batch_size=2)


@pytest.fixture
def jobs(settings) -> JobStore:
    return JobStore.from_settings(settings)


def submit(jobs: JobStore, entities=ENTITIES, options: PipelineOptions = OPTIONS) -> str:
    return jobs.create(JobSubmission(entities=list(entities), domain="zoo", options=options)).id


def job_triples(store, job_id: str) -> set[tuple[str, str, str]]:
    return {(t.head, t.relation, t.tail) for t in store.export_triples() if t.job_id == job_id}


def all_triples(store) -> set[tuple[str, str, str]]:
    return {(t.head, t.relation, t.tail) for t in store.export_triples()}


def test_a_job_runs_writes_and_records_counts(settings, jobs, store):
    zoo_helpers.import_zoo(store)
    job_id = submit(jobs)
    job = run_job(job_id, settings, store=store, jobs=jobs)

    assert job.status is JobStatus.succeeded and job.attempts == 1 and job.error is None
    assert job.progress.done == 3 and job.progress.failed == 0 and job.progress.pending == 0
    written = job_triples(store, job_id)
    assert written and job.counts.triples_written == len(written)
    assert job.counts.kept >= len(written) and job.counts.generated > job.counts.kept
    assert ("zoo:sheep", "lives_in", "zoo:farm") in written  # the held-out dev triple comes back
    llama = next(e for e in jobs.get(job_id).entities if e.name == "Llama")
    assert llama.node_id is not None and store.get_node(llama.node_id) is not None
    assert store.count_duplicate_edges() == 0
    # a finished job is not run again
    assert run_job(job_id, settings, store=store, jobs=jobs).attempts == 1


def test_a_bad_entity_fails_alone(settings, jobs, store, monkeypatch):
    zoo_helpers.import_zoo(store)
    original = KnowledgePipeline.run

    def run(self, entity):
        if entity.name == "goat":
            raise InvalidInputError("entities.name", "this entity cannot be generated for")
        return original(self, entity)

    monkeypatch.setattr(KnowledgePipeline, "run", run)
    job = run_job(submit(jobs), settings, store=store, jobs=jobs)
    assert job.status is JobStatus.succeeded and job.progress.done == 2 and job.progress.failed == 1
    assert [(e.name, e.error) for e in job.errors] == [
        ("goat", "invalid input: entities.name: this entity cannot be generated for")
    ]


def test_a_job_interrupted_after_a_write_replays_to_the_same_graph(settings, jobs, store, monkeypatch):
    # Reference: one uninterrupted run.
    zoo_helpers.import_zoo(store)
    reference_id = submit(jobs)
    run_job(reference_id, settings, store=store, jobs=jobs)
    reference = all_triples(store)
    reference_job = job_triples(store, reference_id)

    # Same graph again; this time the first batch is written and the "worker dies" before recording it.
    store.wipe()
    zoo_helpers.import_zoo(store)
    job_id = submit(jobs)
    original = JobStore.record_batch
    calls = {"n": 0}

    def crash_once(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise DatabaseUnavailableError("simulated crash between the write and its record")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(JobStore, "record_batch", crash_once)
    with pytest.raises(DatabaseUnavailableError):
        run_job(job_id, settings, store=store, jobs=jobs)
    interrupted = jobs.get(job_id)
    assert interrupted.status is JobStatus.running and interrupted.progress.done == 0
    assert job_triples(store, job_id)  # the first batch did reach the graph

    job = run_job(job_id, settings, store=store, jobs=jobs)  # the redelivered task
    assert job.status is JobStatus.succeeded and job.attempts == 2 and job.progress.done == 3
    assert all_triples(store) == reference and len(job_triples(store, job_id)) == len(reference_job)
    assert store.count_duplicate_edges() == 0
    assert job.counts.triples_written == len(reference_job)  # the replayed batch counted once


def test_a_transient_error_propagates_and_the_job_resumes_after_done_batches(
    settings, jobs, store, monkeypatch
):
    zoo_helpers.import_zoo(store)
    job_id = submit(jobs)
    seen: list[str] = []
    original = KnowledgePipeline.run

    def run(self, entity):
        seen.append(entity.name)
        if entity.name == "Llama" and seen.count("Llama") == 1:
            raise DatabaseUnavailableError("graph database unreachable")
        return original(self, entity)

    monkeypatch.setattr(KnowledgePipeline, "run", run)
    with pytest.raises(DatabaseUnavailableError):
        run_job(job_id, settings, store=store, jobs=jobs)
    assert jobs.get(job_id).progress.done == 2  # the first batch (sheep, goat) was recorded
    job = run_job(job_id, settings, store=store, jobs=jobs)
    assert job.status is JobStatus.succeeded and job.progress.done == 3
    assert seen == ["sheep", "goat", "Llama", "Llama"]  # done entities were not run again


def test_cancellation_is_checked_between_batches(settings, jobs, store, monkeypatch):
    zoo_helpers.import_zoo(store)
    job_id = submit(jobs)
    original = KnowledgePipeline.run

    def run(self, entity):
        jobs.request_cancel(job_id)  # arrives while the first batch runs
        return original(self, entity)

    monkeypatch.setattr(KnowledgePipeline, "run", run)
    job = run_job(job_id, settings, store=store, jobs=jobs)
    assert job.status is JobStatus.cancelled and job.progress.done == 2 and job.progress.pending == 1


def test_a_missing_model_fails_the_job_at_once_naming_the_command(tmp_path, monkeypatch):
    # No models under this home, and a graph address nothing listens on: the job must fail before
    # it ever touches the graph.
    settings = Settings(home=tmp_path / "home", graph_bolt_port=9, graph_password="unused-dev-password")
    jobs = JobStore.from_settings(settings)
    job_id = submit(jobs)
    monkeypatch.setattr(runner_module, "GraphStore", None)  # any use of the graph would raise
    job = run_job(job_id, settings, jobs=jobs)
    assert job.status is JobStatus.failed and job.attempts == 0
    assert "not trained" in job.error and "`kgforge train" in job.error and "--dataset zoo" in job.error


def test_options_that_do_not_fit_the_graph_fail_the_job(settings, jobs, store):
    zoo_helpers.import_zoo(store)
    job_id = submit(jobs, options=OPTIONS.model_copy(update={"relations": ["flies_to"]}))
    job = run_job(job_id, settings, store=store, jobs=jobs)
    assert job.status is JobStatus.failed and "options.relations" in job.error and "flies_to" in job.error


def test_llm_timeouts_and_429_degrade_to_offline_and_never_hang(settings, jobs, store, double, make_llm):
    """The TEST DOUBLE answers 429, then stalls past the client's timeout, then sends broken JSON:
    every LLM step degrades to its offline counterpart, the entity's notes say so, the job succeeds."""
    import time

    zoo_helpers.import_zoo(store)
    double.status(429, times=3, retry_after=0.01)
    double.delay(3.0, content={"relations": []}, times=3)
    double.malformed(times=200)
    llm = make_llm(timeout=0.5, max_retries=2)
    options = OPTIONS.model_copy(update={"use_llm": True, "generators": ["graph", "corpus", "llm"], "llm_samples": 1})
    job_id = submit(jobs, entities=ENTITIES[:1], options=options)
    started = time.monotonic()
    job = run_job(job_id, settings, store=store, jobs=jobs, llm=llm)
    assert time.monotonic() - started < 120
    assert job.status is JobStatus.succeeded and job.counts.kept > 0
    notes = jobs.get(job_id).entities[0].notes
    assert any("summary" in n for n in notes) and any("relation filter" in n for n in notes)
    sources = [s for t in store.export_triples() if t.job_id == job_id for s in t.sources or []]
    assert sources and not any(s.startswith("llm:") for s in sources)  # offline generators only


def test_a_live_lease_elsewhere_prevents_a_double_run_and_an_expired_one_is_taken_over(settings, jobs, store):
    import sqlite3

    zoo_helpers.import_zoo(store)
    job_id = submit(jobs)
    first = "other-host.example:4242:first-delivery"  # a worker on another machine, heartbeating
    assert jobs.claim(job_id, first).claimed
    before = jobs.get(job_id)

    job = run_job(job_id, settings, store=store, jobs=jobs, owner=make_owner("second-delivery"))
    assert job.status is JobStatus.running and job.owner == first and job.attempts == 1
    assert jobs.get(job_id).model_dump() == before.model_dump()  # not touched
    assert not job_triples(store, job_id)  # nothing written

    with sqlite3.connect(jobs.path) as conn:  # the first worker stops heartbeating
        conn.execute("UPDATE jobs SET heartbeat = heartbeat - ? WHERE id=?", (settings.job_lease_s + 1, job_id))
    job = run_job(job_id, settings, store=store, jobs=jobs, owner=make_owner("third-delivery"))
    assert job.status is JobStatus.succeeded and job.attempts == 2 and job.worker_deaths == 1
    assert job.progress.done == 3 and job.owner is None and job_triples(store, job_id)


def test_two_deliveries_at_once_run_each_entity_once(settings, jobs, store, monkeypatch):
    import threading

    zoo_helpers.import_zoo(store)
    job_id = submit(jobs)
    seen: list[str] = []
    original = KnowledgePipeline.run

    def run(self, entity):
        seen.append(entity.name)
        return original(self, entity)

    monkeypatch.setattr(KnowledgePipeline, "run", run)
    start = threading.Barrier(2)
    results = []

    def deliver(i: int) -> None:
        start.wait()
        results.append(run_job(job_id, settings, store=store, jobs=jobs, owner=make_owner(f"delivery-{i}")))

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sorted(r.status.value for r in results) == ["running", "succeeded"]  # one ran, one stood back
    assert sorted(seen) == sorted(e.name for e in ENTITIES)
    job = jobs.get(job_id)
    assert job.status is JobStatus.succeeded and job.attempts == 1 and job.worker_deaths == 0


def test_llm_tokens_and_calls_are_added_to_the_job(settings, jobs, store, double, make_llm):
    zoo_helpers.import_zoo(store)
    double.malformed("not JSON", usage=(7, 2), times=500)  # every answer spends 7 + 2 tokens
    llm = make_llm(max_retries=0, max_output_retries=0)
    options = OPTIONS.model_copy(update={"use_llm": True, "generators": ["graph", "corpus", "llm"], "llm_samples": 1})
    job_id = submit(jobs, entities=ENTITIES[:2], options=options)
    job = run_job(job_id, settings, store=store, jobs=jobs, llm=llm)
    calls = len(double.requests)
    assert job.status is JobStatus.succeeded and calls > 0
    assert job.usage.model_dump() == {"prompt_tokens": 7 * calls, "completion_tokens": 2 * calls,
                                      "total_tokens": 9 * calls, "calls": calls}
