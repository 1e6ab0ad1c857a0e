"""The knowledge pipeline on a tiny hand-made zoo graph, with real (tiny) trained models.

Models are trained once per module (ComplEx, the cross-encoder, the relation classifier, the
utility reranker and the confidence model); the LLM path runs against the OpenAI-compatible TEST
DOUBLE (``tests/kg_builder/llm/openai_double.py``).
"""

from __future__ import annotations

import numpy as np
import pytest

from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord
from kg_builder.errors import InvalidInputError
from kg_builder.evaluation.generation import evaluate_generation, fit_confidence, only_generator
from kg_builder.ingest import import_dataset
from kg_builder.models.encoder import TextEncoder
from kg_builder.models.saved import ModelNotTrainedError
from kg_builder.pipeline import GraphSnapshot, KnowledgePipeline, PipelineModels, PipelineOptions, SourceEntity
from kg_builder.pipeline.confidence import ConfidenceModel
from kg_builder.pipeline.generators import Proposal, vote
from kg_builder.retrieval.corpus import corpus_from_dataset
from kg_builder.retrieval.hybrid import HybridRetriever
from kg_builder.retrieval.utility import train_utility_reranker
from kg_builder.settings import Settings
from kg_builder.training.relations import train_relation_classifier
from kg_builder.training.reranker import train_reranker
from kg_builder.training.structural import train_structural

ANIMALS = {  # name: (food, home)
    "cat": ("fish", "house"), "dog": ("meat", "house"), "cow": ("grass", "farm"), "horse": ("hay", "farm"),
    "sheep": ("grass", "farm"), "lion": ("meat", "savanna"), "zebra": ("grass", "savanna"),
    "goat": ("hay", "farm"), "mouse": ("cheese", "house"),
}
THINGS = {"fish": "a food", "meat": "a food", "grass": "a plant food", "hay": "a dried plant food",
          "cheese": "a food made from milk", "house": "a place where people live", "farm": "a place with fields",
          "savanna": "a wild grassland"}
HELD_OUT = {("sheep", "lives_in", "farm"), ("goat", "eats", "hay"), ("zebra", "lives_in", "savanna")}
DEV = {("sheep", "lives_in", "farm"), ("goat", "eats", "hay")}
TEST = {("zebra", "lives_in", "savanna")}


def zoo() -> Dataset:
    entities = [EntityRecord(a, a, f"The {a} is an animal that eats {food} and lives in the {home}.")
                for a, (food, home) in ANIMALS.items()]
    entities += [EntityRecord(t, t, f"The {t} is {d}.") for t, d in THINGS.items()]
    triples = [(a, "eats", food) for a, (food, _) in ANIMALS.items()] + \
              [(a, "lives_in", home) for a, (_, home) in ANIMALS.items()]
    train = [TripleRecord(*t) for t in triples if t not in HELD_OUT]
    return Dataset(name="zoo", kind="kg", entities=entities,
                   relations=[RelationRecord("eats", "eats (food)"), RelationRecord("lives_in", "lives in (place)")],
                   triples={"train": train, "dev": [TripleRecord(*t) for t in DEV],
                            "test": [TripleRecord(*t) for t in TEST]})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("home"))
    dataset = zoo()
    encoder = TextEncoder()
    structural = train_structural(dataset=dataset, settings=settings, rank=16, epochs=150, lr=0.3,
                                  regularization=0.0, max_minutes=2, save=False).model
    reranker = train_reranker(dataset=dataset, settings=settings, epochs=6, batch_size=8, lr=1e-4, negatives=1,
                              max_minutes=3, seed=1, save=False).model
    classifier = train_relation_classifier(dataset=dataset, settings=settings, encoder=encoder, epochs=40,
                                           holdout_fraction=0.0, save=False).model
    retriever = HybridRetriever.build(corpus_from_dataset(dataset), encoder)
    utility = train_utility_reranker(dataset=dataset, retriever=retriever, test_fraction=0.3, seed=0).reranker
    models = PipelineModels(domain="zoo", encoder=encoder, utility=utility, classifier=classifier,
                            structural=structural, reranker=reranker)
    full, no_reranker, metrics = fit_confidence(dataset=dataset, models=models,
                                                options=PipelineOptions(generators=["graph", "corpus"]))
    models.confidence, models.confidence_no_reranker = full, no_reranker
    return settings, dataset, models, metrics


OPTIONS = PipelineOptions(generators=["graph", "corpus"], keep_fraction=0.5, relation_threshold=0.3)


def test_snapshot_from_dataset_holds_only_the_chosen_splits():
    snapshot = GraphSnapshot.from_dataset(zoo(), ("train",))
    assert snapshot.has("zoo:cow", "eats", "zoo:grass")
    assert not snapshot.has("zoo:sheep", "lives_in", "zoo:farm")
    assert snapshot.known_tails("zoo:cat", "eats") == {"zoo:fish"}
    assert snapshot.relation_range("lives_in")["zoo:farm"] == 3
    assert [e.id for e in snapshot.find("  COW ")] == ["zoo:cow"]
    with pytest.raises(InvalidInputError, match="splits"):
        GraphSnapshot.from_dataset(zoo(), ("nope",))


def test_vote_counts_distinct_generators_and_llm_samples():
    def p(generator, target, sample=0, rank=1):
        return Proposal(relation="eats", target_name=target, target_id=f"zoo:{target}", generator=generator,
                        model="m", score=1.0, rank=rank, sample=sample)

    voted = {v.target_id: v for v in vote([p("graph", "hay"), p("corpus", "hay", rank=3), p("llm", "hay", 0),
                                           p("llm", "hay", 1), p("graph", "fish", rank=2)])}
    assert voted["zoo:hay"].votes == 4 and voted["zoo:hay"].best_rank("corpus") == 3
    assert voted["zoo:fish"].votes == 1
    only = vote([p("graph", "hay"), p("corpus", "hay")], generators=["corpus"])
    assert len(only) == 1 and only[0].voters == ["corpus"]


def test_options_name_the_bad_field():
    with pytest.raises(ValueError, match="generators"):
        PipelineOptions(generators=["magic"])
    with pytest.raises(ValueError, match="keep_fraction"):
        PipelineOptions(keep_fraction=0)
    with pytest.raises(ValueError, match="name"):
        SourceEntity(name="  !!! ")


def test_pipeline_finds_a_held_out_triple_and_calibrates(trained):
    _, dataset, models, metrics = trained
    assert metrics["positives"] >= 1 and metrics["candidates"] > metrics["positives"]
    pipeline = KnowledgePipeline(GraphSnapshot.from_dataset(dataset, ("train",)), models, OPTIONS)
    run = pipeline.run("sheep")
    assert run.relations.filtered_by == "classifier" and run.knowledge.ranking == "utility"
    assert run.knowledge.document_ids and all(d.startswith("zoo:doc:") for d in run.knowledge.document_ids)
    kept = {(c.relation, c.target_id) for c in run.kept}
    assert ("lives_in", "zoo:farm") in kept
    assert ("eats", "zoo:grass") not in {(c.relation, c.target_id) for c in run.candidates}  # known: skipped
    assert all(0.0 <= c.confidence <= 1.0 for c in run.candidates)
    farm = next(c for c in run.kept if c.target_id == "zoo:farm")
    assert "reranker:reranker-zoo" in farm.sources and any(s.startswith("graph:") for s in farm.sources)


def test_generation_evaluation_reports_every_ablation(trained):
    _, dataset, models, _ = trained
    result = evaluate_generation(dataset=dataset, models=models, split="test", max_entities=None,
                                 options=OPTIONS)
    assert set(result.rows) >= {"full", "no_reranker", "similarity_only", "only_graph", "only_corpus"}
    full = result.rows["full"]
    assert full["held_out"] == 1 and full["recall"] == 1.0 and 0 < full["precision"] <= 1.0
    assert full["novelty"] == 1.0  # known edges are never re-proposed
    assert "against a graph of train+dev triples" in result.protocol
    single = only_generator([], "graph")
    assert single == []


def test_pipeline_writes_with_provenance_and_is_idempotent(trained, store):
    _, dataset, models, _ = trained
    import_dataset(store, Dataset(name="zoo", kind="kg", entities=dataset.entities, relations=dataset.relations,
                                  triples={"train": dataset.triples["train"]}))
    snapshot = GraphSnapshot.from_store(store, "zoo")
    assert snapshot.has("zoo:cow", "eats", "zoo:grass") and not snapshot.has("zoo:sheep", "lives_in", "zoo:farm")
    pipeline = KnowledgePipeline(snapshot, models, OPTIONS)
    run = pipeline.run("sheep")
    report = pipeline.write(store, [run], job_id="job-1")
    assert report.triples_written == len(run.kept) > 0
    edges = {(e.tail, e.properties.get("relation")): e for e in store.neighbourhood("zoo:sheep") if e.head == "zoo:sheep"}
    farm = edges[("zoo:farm", "lives_in")].properties
    assert farm["job_id"] == "job-1" and 0.0 < farm["confidence"] <= 1.0
    assert "reranker:reranker-zoo" in farm["sources"]
    before = store.counts()
    pipeline.write(store, [run], job_id="job-1")
    assert store.counts() == before and store.count_duplicate_edges() == 0


def test_new_source_entity_becomes_a_node(trained, store):
    _, dataset, models, _ = trained
    import_dataset(store, Dataset(name="zoo", kind="kg", entities=dataset.entities, relations=dataset.relations,
                                  triples={"train": dataset.triples["train"]}))
    pipeline = KnowledgePipeline(GraphSnapshot.from_store(store, "zoo"), models, OPTIONS)
    run = pipeline.run(SourceEntity(name="Llama", type="animal",
                                    description="The llama is an animal that eats hay and lives on a farm."))
    assert run.entity.id == "kg:llama" and run.candidates
    assert not any(c.generators == ["graph"] for c in run.candidates)  # ComplEx cannot rank an unseen S
    report = pipeline.write(store, [run], job_id="job-2")
    assert report.new_nodes >= 1
    node = store.get_node("kg:llama")
    assert node is not None and node.properties["description"].startswith("The llama")
    assert len(store.find_nodes_by_name("llama")) == 1


def test_llm_mode_rejects_relations_outside_the_pool_and_resolves_names(trained, double, make_llm, store):
    _, dataset, models, _ = trained
    import_dataset(store, Dataset(name="zoo", kind="kg", entities=dataset.entities, relations=dataset.relations,
                                  triples={"train": dataset.triples["train"]}))
    llm = make_llm()
    double.reply({"text": "The sheep is an animal that lives on a farm.", "used_document_ids": ["zoo:doc:sheep"]})
    double.reply({"relations": [{"relation": "Lives In", "reason": "animals live somewhere"},
                                {"relation": "flies_to", "reason": "invented"}]})
    double.reply({"targets": [{"name": "Farm", "type": "place", "evidence": "the text says so"},
                              {"name": "Meadow", "type": "place", "evidence": "sheep graze meadows"}]})
    double.malformed("not json at all")
    double.malformed("still not json")
    options = PipelineOptions(generators=["graph", "corpus", "llm"], llm_samples=2, keep_fraction=1.0)
    pipeline = KnowledgePipeline(GraphSnapshot.from_store(store, "zoo"), models, options, llm=llm)
    run = pipeline.run("sheep")
    assert run.relations.filtered_by == "llm" and [c.relation for c in run.relations.kept] == ["lives_in"]
    assert run.relations.rejected == ["flies_to"]
    assert run.knowledge.summary_by == "llm"
    farm = next(c for c in run.candidates if c.target_id == "zoo:farm")
    assert "llm" in farm.generators and "llm#0" in farm.voters
    assert len(run.errors) == 1 and "lives_in" in run.errors[0]  # the second sample's malformed answer
    meadow = next(c for c in run.candidates if c.target_name == "Meadow")
    assert meadow.target_id is None and any(s.startswith("llm:") for s in meadow.sources)
    pipeline.write(store, [run], job_id="job-3")
    assert len(store.find_nodes_by_name("meadow")) == 1


def test_llm_failure_degrades_to_the_offline_filter(trained, double, make_llm):
    _, dataset, models, _ = trained
    double.status(500, times=20)
    options = PipelineOptions(generators=["graph", "corpus", "llm"], llm_samples=1)
    pipeline = KnowledgePipeline(GraphSnapshot.from_dataset(dataset, ("train",)), models, options,
                                 llm=make_llm(max_retries=1))
    run = pipeline.run("sheep")
    assert run.relations.filtered_by == "classifier" and run.knowledge.summary_by == "extractive"
    assert run.errors and not any("llm" in c.generators for c in run.candidates)


def test_missing_models_name_the_training_command(tmp_path):
    with pytest.raises(ModelNotTrainedError, match="kgforge train"):
        PipelineModels.load(Settings(home=tmp_path), "zoo", encoder=TextEncoder())


def test_confidence_model_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    y = (x[:, 0] + 0.3 * rng.normal(size=200) > 0).astype(int)
    model = ConfidenceModel.fit(x, y)
    model.save(tmp_path / "confidence-x")
    loaded = ConfidenceModel.load(tmp_path / "confidence-x")
    assert np.allclose(loaded.predict(x), model.predict(x))
    assert ((model.predict(x) > 0.5) == y).mean() > 0.8
    with pytest.raises(Exception, match="both true and false"):
        ConfidenceModel.fit(x, np.zeros(200, int))
