"""Job kinds on the product graph (real embedded database, in-process runner): a ``c2c`` job writes
COMPLEMENTARY_TO edges with confidence, sources and evidence, only between categories that exist; a
``titles`` job stores the normalised title beside the raw one; an entity that names no node of the
kind's label fails alone."""

from __future__ import annotations

import product_shop
import pytest

from kg_builder.ingest import import_dataset
from kg_builder.jobs import JobStatus, JobStore, JobSubmission, run_job
from kg_builder.models.saved import model_dir
from kg_builder.pipeline import PipelineOptions, SourceEntity
from kg_builder.products.c2c_model import C2CModel, default_model_name, train_c2c
from kg_builder.settings import Settings

pytestmark = pytest.mark.integration
DOMAIN = product_shop.DOMAIN


@pytest.fixture
def settings(tmp_path) -> Settings:
    # data_dir without the dataset: the titles job runs without learnt category phrases
    return Settings(home=tmp_path / "home", jobs_db=tmp_path / "jobs.sqlite3", data_dir=tmp_path / "no-data",
                    job_batch_size=2)


def submit(settings: Settings, kind: str, entities: list[SourceEntity], **options) -> tuple[JobStore, str]:
    jobs = JobStore.from_settings(settings)
    job = jobs.create(JobSubmission(entities=entities, domain=DOMAIN, kind=kind, options=PipelineOptions(**options)))
    return jobs, job.id


def test_the_c2c_model_ranks_printers_ink_first_and_round_trips(settings):
    model = train_c2c(product_shop.tiny_office())
    ranked = [r.target for r in model.proposals[product_shop.PRINTERS]]
    assert ranked[0] == product_shop.INK and product_shop.PRINTERS not in ranked
    assert all(0.0 <= r.confidence <= 1.0 and r.calibrated and r.evidence for r in model.proposals[product_shop.PRINTERS])
    model.save(model_dir(settings, default_model_name(DOMAIN)))
    loaded = C2CModel.load(default_model_name(DOMAIN), settings=settings)
    assert loaded.proposals == model.proposals and loaded.catalogue.keys == model.catalogue.keys


def test_a_c2c_job_writes_complementary_categories_with_provenance(settings, store):
    import_dataset(store, product_shop.tiny_office())
    train_c2c(product_shop.tiny_office()).save(model_dir(settings, default_model_name(DOMAIN)))
    jobs, job_id = submit(settings, "c2c", [SourceEntity(id=product_shop.PRINTERS),
                                            SourceEntity(name="garden hoses", label="Category")],
                          min_confidence=0.0, max_per_entity=2)
    job = run_job(job_id, settings, store=store, jobs=jobs)
    assert job.status is JobStatus.succeeded and job.kind == "c2c"
    edges = [t for t in store.export_triples() if t.job_id == job_id]
    assert edges and all(t.head == product_shop.PRINTERS and t.type == "COMPLEMENTARY_TO" for t in edges)
    assert product_shop.INK in {t.tail for t in edges} and len(edges) <= 2
    for t in edges:
        assert 0.0 <= t.confidence <= 1.0 and "learned" in t.sources and t.evidence
        assert store.get_node(t.tail, label="Category") is not None  # never a category that does not exist
    full = jobs.get(job_id)
    failed = [e for e in full.entities if e.status == "failed"]
    assert len(failed) == 1 and "no Category" in failed[0].error and "garden hoses" in failed[0].error


def test_a_c2c_job_without_the_model_fails_naming_the_command(settings, store):
    import_dataset(store, product_shop.tiny_office())
    jobs, job_id = submit(settings, "c2c", [SourceEntity(id=product_shop.PRINTERS)])
    job = run_job(job_id, settings, store=store, jobs=jobs)
    assert job.status is JobStatus.failed and "kgforge train c2c --dataset amazon14_office" in job.error


def test_a_titles_job_stores_the_normalised_title_beside_the_raw_one(settings, store):
    import_dataset(store, product_shop.tiny_office())
    jobs, job_id = submit(settings, "titles", [SourceEntity(id="amazon:B002"),
                                               SourceEntity(id=product_shop.INK)])  # a category is not an item
    job = run_job(job_id, settings, store=store, jobs=jobs)
    assert job.status is JobStatus.succeeded
    item = store.get_node("amazon:B002", label="Item").properties
    assert item["name"] == "HP Photosmart 8250 Printer Inkjet Printers HP"  # the raw title stays
    assert item["title_normalised"] and item["title_normalised"] != item["name"]
    assert item["title_source"].startswith("offline-normaliser") and item.get("job_id") is None  # import created it
    entities = jobs.get(job_id).entities
    assert entities[0].status == "done" and entities[0].kept == 1
    assert entities[1].status == "failed" and "is not a Item" in entities[1].error
