"""Incremental updates after a real job (issue 13): a zoo job (the session's tiny trained models,
the real embedded graph database) writes new nodes and triples; the domain's persistent entity
index grows in place (appended files, earlier rows untouched, nothing re-embedded); the structural
model's recorded state shows it stale by exactly the edges the job created; a resume from the
graph gives the job's new entity a row and records the new state."""

from __future__ import annotations

import shutil

import kgforge_zoo as zoo_helpers
import pytest

from kg_builder.jobs import JobStatus, JobStore, JobSubmission, run_job
from kg_builder.models.encoder import TextEncoder
from kg_builder.pipeline import SourceEntity
from kg_builder.retrieval.entity_index import EntityIndex, index_dir
from kg_builder.settings import Settings
from kg_builder.training.graph_state import domain_graph_state, graph_training_dataset, staleness
from kg_builder.training.structural import resume_structural, train_structural

pytestmark = pytest.mark.integration

LLAMA = SourceEntity(name="Llama", type="animal", description="The llama is an animal that eats hay and lives on a farm.")


@pytest.fixture
def settings(zoo_home, tmp_path):
    """A copy of the session's zoo home (this test saves models and grows the index in it)."""
    home = tmp_path / "home"
    shutil.copytree(zoo_home, home)
    shutil.rmtree(home / "index", ignore_errors=True)  # other tests' jobs may have grown the zoo's index
    EntityIndex.forget_open()
    yield Settings(home=home, jobs_db=tmp_path / "jobs.sqlite3", job_batch_size=2)
    EntityIndex.forget_open()


def edges(store) -> set[tuple[str, str, str]]:
    return {(t.head, t.relation, t.tail) for t in store.export_triples()}


def test_a_job_grows_the_index_in_place_and_the_model_resumes_from_the_graph(settings, store, one_torch_thread):
    zoo_helpers.import_zoo(store)
    index = EntityIndex.open(settings, "zoo", encoder=TextEncoder(settings.encoder_path))
    assert index.ensure_built(store) == 17
    folder = index_dir(settings, "zoo")
    ids_before = (folder / "ids.jsonl").read_bytes()
    vectors_before = (folder / "vectors.f32").read_bytes()
    inodes = {name: (folder / name).stat().st_ino for name in ("ids.jsonl", "vectors.f32")}

    dataset = zoo_helpers.zoo()
    base = train_structural(dataset=dataset, settings=settings, rank=16, epochs=100, lr=0.3, regularization=0.0,
                            max_minutes=2, seed=1, name="structural-zoo")
    trained_on = base.metrics["trained_on"]
    assert staleness(trained_on, domain_graph_state(store, "zoo"))["new_triples"] == 0
    before = edges(store)

    jobs = JobStore.from_settings(settings)
    job_id = jobs.create(JobSubmission(entities=[SourceEntity(name="sheep"), LLAMA], domain="zoo",
                                       options=zoo_helpers.OPTIONS)).id
    job = run_job(job_id, settings, store=store, jobs=jobs)
    assert job.status is JobStatus.succeeded
    llama = next(e for e in jobs.get(job_id).entities if e.name == "Llama").node_id
    assert llama is not None and llama.startswith("zoo:")
    created = edges(store) - before
    assert created and any(llama in (h, t) for h, _, t in created)

    # the index grew in place: same files, the old bytes first, the new node appended
    assert {name: (folder / name).stat().st_ino for name in inodes} == inodes
    ids_after = (folder / "ids.jsonl").read_bytes()
    assert ids_after.startswith(ids_before) and f'"{llama}"'.encode() in ids_after[len(ids_before):]
    assert (folder / "vectors.f32").read_bytes().startswith(vectors_before)
    EntityIndex.forget_open()  # another worker process reads it from disk, embedding nothing again
    reopened = EntityIndex.open(settings, "zoo", encoder=TextEncoder(settings.encoder_path))
    assert llama in reopened and reopened.ensure_built(store) == 0 and reopened.encoded_texts == 0

    # the model is stale by the edges the job created, and a resume from the graph catches up
    now = domain_graph_state(store, "zoo")
    assert staleness(trained_on, now) == {"stale": True, "new_triples": len(created),
                                          "compared": "train triples (model trained from the dataset files)"}
    grown, state = graph_training_dataset(store, dataset)
    resumed = resume_structural(dataset=grown, settings=settings, epochs=20, lr=0.3, regularization=0.0,
                                graph_state=state)
    native = llama[len("zoo:"):]
    assert native in resumed.model.entity_index and resumed.model.entity_ids[:17] == base.model.entity_ids
    after = resumed.metrics["trained_on"]
    assert after["new_entities"] >= 1 and after["new_triples"] == len(created) and after["graph"] == now
    assert staleness(after, domain_graph_state(store, "zoo"))["new_triples"] == 0
