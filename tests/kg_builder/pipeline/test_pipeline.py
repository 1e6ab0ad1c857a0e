"""The knowledge pipeline on a tiny hand-made zoo graph, with real (tiny) trained models.

The models are the session's (``zoo_home``, trained once by ``tests/support/kgforge_zoo.py``); the
LLM path runs against the OpenAI-compatible TEST DOUBLE (``tests/support/openai_double.py``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections import Counter

import kgforge_zoo
import numpy as np
import pytest

from kg_builder.errors import InvalidInputError
from kg_builder.datasets import TripleRecord
from kg_builder.evaluation.generation import calibration_set, evaluate_generation, only_generator
from kg_builder.models.encoder import TextEncoder
from kg_builder.models.saved import ModelNotTrainedError
from kg_builder.pipeline import GraphSnapshot, KnowledgePipeline, PipelineModels, PipelineOptions, SourceEntity
from kg_builder.pipeline.confidence import FEATURES, ConfidenceModel
from kg_builder.pipeline.generators import Proposal, vote
from kg_builder.pipeline.pipeline import candidate_policy, policy_note
from kg_builder.settings import Settings

zoo = kgforge_zoo.zoo
OPTIONS = kgforge_zoo.OPTIONS.model_copy(update={"use_llm": True})


@pytest.fixture(scope="module")
def trained(zoo_home):
    settings = Settings(home=zoo_home)
    models = PipelineModels.load(settings, "zoo", OPTIONS)
    metrics = json.loads((zoo_home / "models" / "confidence-zoo" / "config.json").read_text())
    return settings, zoo(), models, metrics


def import_train(store) -> None:
    kgforge_zoo.import_zoo(store)


def test_snapshot_from_dataset_holds_only_the_chosen_splits():
    snapshot = GraphSnapshot.from_dataset(zoo(), ("train",))
    assert snapshot.has("zoo:cow", "eats", "zoo:grass")
    assert not snapshot.has("zoo:sheep", "lives_in", "zoo:farm")
    assert snapshot.known_tails("zoo:cat", "eats") == {"zoo:fish"}
    assert snapshot.relation_range("lives_in")["zoo:farm"] == 3
    assert [e.id for e in snapshot.find("  COW ")] == ["zoo:cow"]
    with pytest.raises(InvalidInputError, match="splits"):
        GraphSnapshot.from_dataset(zoo(), ("nope",))


def test_calibration_graph_holds_part_of_each_calibration_heads_dev_triples():
    base = zoo()
    dev = [TripleRecord("cat", "likes", t) for t in ("fish", "meat", "hay", "cheese")] + [
        TripleRecord("dog", "likes", "meat"), TripleRecord("cow", "likes", "hay")]
    dataset = dataclasses.replace(base, triples={**base.triples, "dev": dev,
                                                 "test": [TripleRecord("cat", "likes", "grass")] * 3})
    graph, truth, share = calibration_set(dataset, ["cat", "dog"], "train+dev", seed=3)
    cat_held = {t for t in truth if t[0] == "zoo:cat"}
    assert len(cat_held) == 2 and {t[0] for t in truth} == {"zoo:cat", "zoo:dog"}  # half of 4; at least 1 of 1
    assert not any(graph.has(*t) for t in truth)  # the truth is out of the graph
    assert len(graph.known_tails("zoo:cat", "likes")) == 2  # the other half of cat's dev triples is in it
    assert graph.has("zoo:cow", "likes", "zoo:hay")  # dev triples of other heads stay
    assert graph.has("zoo:cow", "eats", "zoo:grass")
    # 3 held of the heads' 5 dev triples; unlabelled truth expected from sizes: 5 * |test| / |dev| = 2.5
    assert share == pytest.approx(3 / (3 + 5 * 3 / 6))
    assert calibration_set(dataset, ["cat", "dog"], "train+dev", seed=3)[1] == truth  # seeded
    train_graph, train_truth, train_share = calibration_set(dataset, ["cat"], "train")
    assert not train_graph.known_tails("zoo:cat", "likes") and len(train_truth) == 6
    assert train_share == pytest.approx(6 / 9)
    with pytest.raises(InvalidInputError, match="calibration_graph"):
        calibration_set(dataset, ["cat"], "everything")
    with pytest.raises(InvalidInputError, match="held_fraction"):
        calibration_set(dataset, ["cat"], held_fraction=1.0)


def test_vote_counts_distinct_generators_and_llm_samples():
    def p(generator, target, sample=0, rank=1):
        return Proposal(relation="eats", target_name=target, target_id=f"zoo:{target}", generator=generator,
                        model="m", score=1.0, rank=rank, sample=sample)

    voted = {v.target_id: v for v in vote([p("graph", "hay"), p("corpus", "hay", rank=3), p("llm", "hay", 0),
                                           p("llm", "hay", 1), p("graph", "fish", rank=2)])}
    # graph, corpus and one LLM vote: the two LLM samples gave the same answer ({hay}), one voice.
    assert voted["zoo:hay"].votes == 3 and voted["zoo:hay"].best_rank("corpus") == 3
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
    assert metrics["positives"] >= 1 and metrics["examples"] > metrics["positives"]
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


def test_keep_own_relations_keeps_the_relations_s_already_heads(trained):
    """With ``keep_own_relations`` false the offline filter keeps a relation on the classifier's word
    alone; with it (the default) the relations S already has as head in the graph come first,
    whatever the classifier says."""
    _, dataset, models, _ = trained
    snapshot = GraphSnapshot.from_dataset(dataset, ("train",))
    own = snapshot.relation_profile("zoo:cow")
    assert own
    strict = OPTIONS.model_copy(update={"use_llm": False, "relation_threshold": 1.0,  # the classifier keeps none
                                        "keep_own_relations": False})
    plain = KnowledgePipeline(snapshot, models, strict).run("cow").relations
    assert len(plain.kept) == 1  # min_keep
    assert PipelineOptions().keep_own_relations
    kept = KnowledgePipeline(snapshot, models, strict.model_copy(update={"keep_own_relations": True})).run("cow")
    assert {c.relation for c in kept.relations.kept} == own
    assert [c.relation in own for c in kept.relations.kept] == [True] * len(own)
    new = KnowledgePipeline(snapshot, models, strict.model_copy(update={"keep_own_relations": True})).run("unicorn")
    assert len(new.relations.kept) == 1  # a new entity heads nothing: the classifier alone decides


def test_a_candidate_carries_how_often_s_already_heads_its_relation(trained):
    """``log_own`` = log(1 + S's edges of the candidate's relation): the confidence model reads it
    to weigh a relation S already uses against one only the classifier proposes."""
    _, dataset, models, _ = trained
    snapshot = GraphSnapshot.from_dataset(dataset, ("train",))
    options = OPTIONS.model_copy(update={"use_llm": False, "relation_threshold": 0.0})  # own and classifier's
    run = KnowledgePipeline(snapshot, models, options).run("sheep")  # heads `eats` in train, not `lives_in`
    column = FEATURES.index("log_own")
    heads = Counter(e.relation for e in snapshot.out_edges("zoo:sheep"))
    assert {c.relation for c in run.candidates} == {"eats", "lives_in"} and set(heads) == {"eats"}
    for c in run.candidates:
        assert c.features[column] == pytest.approx(math.log1p(heads[c.relation]))
    new = KnowledgePipeline(snapshot, models, options).run("unicorn")  # a new entity heads nothing
    assert new.candidates and all(c.features[column] == 0.0 for c in new.candidates)


def test_a_job_notes_a_confidence_model_fitted_on_another_candidate_policy(trained):
    """The floor for a target precision was read off the calibration candidates: a job whose
    candidate policy differs from the one the confidence model recorded (or a model that records
    none) says so in its notes, naming the refit command, and still keeps by the floor."""
    _, dataset, models, metrics = trained
    fitted = PipelineOptions(generators=["graph", "corpus"], use_llm=False)  # as kgforge_zoo fits it
    assert metrics["candidate_policy"] == candidate_policy(fitted) and fitted.keep_own_relations
    snapshot = GraphSnapshot.from_dataset(dataset, ("train",))
    same = KnowledgePipeline(snapshot, models, fitted).run("sheep")
    assert not [e for e in same.errors if "confidence model" in e]
    assert policy_note(models.confidence, fitted) is None
    other = fitted.model_copy(update={"keep_own_relations": False, "relation_top_k": 7})
    run = KnowledgePipeline(snapshot, models, other).run("sheep")
    [note] = [e for e in run.errors if "confidence model" in e]
    assert "fitted with keep_own_relations=True, relation_top_k=15 and this job runs with " \
           "keep_own_relations=False, relation_top_k=7" in note
    assert "`kgforge train confidence --dataset zoo`" in note
    old = copy.copy(models.confidence)
    old.meta = {k: v for k, v in models.confidence.meta.items() if k != "candidate_policy"}
    legacy = KnowledgePipeline(snapshot, dataclasses.replace(models, confidence=old), fitted).run("sheep")
    [note] = [e for e in legacy.errors if "confidence model" in e]
    assert "records no candidate policy" in note and "`kgforge train confidence --dataset zoo`" in note
    assert [(c.target_id, c.kept) for c in legacy.candidates] == [(c.target_id, c.kept) for c in same.candidates]
    llm = copy.copy(models.confidence)
    llm.meta = {**models.confidence.meta, "mode": "llm"}  # the LLM filter reads neither option
    assert policy_note(llm, fitted.model_copy(update={"keep_own_relations": False, "relation_threshold": 0.2})) is None
    assert "relation_top_k=15" in policy_note(llm, other)
    explicit = KnowledgePipeline(snapshot, models, other.model_copy(update={"min_confidence": 0.5})).run("sheep")
    assert not [e for e in explicit.errors if "confidence model" in e]  # an explicit floor claims no precision


def test_generation_evaluation_reports_every_ablation(trained):
    _, dataset, models, _ = trained
    result = evaluate_generation(dataset=dataset, models=models, split="test", max_entities=None,
                                 options=OPTIONS)
    assert set(result.rows) >= {"default", "full", "no_reranker", "no_own_relation", "similarity_only", "reranker_only",
                                "graph_rank_only", "only_graph", "only_corpus"}
    full = result.rows["full"]
    assert full["held_out"] == 1 and full["candidate_recall"] == 1.0  # (zebra, lives_in, savanna) is proposed
    budget = result.rows["default"]["kept"]
    for name, row in result.rows.items():
        assert 0.0 <= row["recall"] <= row["candidate_recall"] and 0.0 <= row["precision"] <= 1.0
        assert row["kept"] <= row["candidates"]
        if name != "default":  # every comparison keeps at most the default policy's number of triples
            assert row["kept"] <= budget
    assert full["novel_true"] == round(full["precision"] * full["kept"])  # held-out hits are absent from the graph
    assert result.pr_curve and all(0.0 <= p["precision"] <= 1.0 for p in result.pr_curve)
    assert [p["kept"] for p in result.pr_curve] == sorted(p["kept"] for p in result.pr_curve)  # floor falls
    assert "against a graph of train+dev triples" in result.protocol
    assert "other dev heads against train + dev less half" in result.protocol
    assert result.calibration_graph == "train+dev" and set(result.calibration_comparison) == {"train+dev", "train"}
    assert result.calibration_comparison["train+dev"]["kept"] == budget
    assert 0.0 <= result.calibration_comparison["train"]["floor"] <= 1.0
    with pytest.raises(InvalidInputError, match="calibration_graph"):  # dev heads' truth would sit in the graph
        evaluate_generation(dataset=dataset, models=models, split="dev", calibration_graph="train+dev")
    compared = {name for name, row in result.rows.items() if "error" not in row} - {"default", "full"}
    assert set(result.differences) == compared  # each ranking against the full one, paired over heads
    for name, d in result.differences.items():
        assert d["low"] <= d["high"] and d["samples"] > 0
        assert d["difference"] == pytest.approx(result.rows["full"]["precision"] - result.rows[name]["precision"])
    single = only_generator([], "graph")
    assert single == []


def test_pipeline_writes_with_provenance_and_is_idempotent(trained, store):
    _, dataset, models, _ = trained
    import_train(store)
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
    import_train(store)
    pipeline = KnowledgePipeline(GraphSnapshot.from_store(store, "zoo"), models, OPTIONS)
    run = pipeline.run(SourceEntity(name="Llama", type="animal",
                                    description="The llama is an animal that eats hay and lives on a farm."))
    assert run.entity.id == "kg:llama" and run.candidates
    assert not any(c.generators == ["graph"] for c in run.candidates)  # ComplEx cannot rank an unseen S
    report = pipeline.write(store, [run], job_id="job-2")
    assert report.new_nodes >= 1
    nodes = store.find_nodes_by_name("llama")
    assert len(nodes) == 1 and nodes[0].id.startswith("zoo:llama")  # created in the job's domain
    assert nodes[0].properties["description"].startswith("The llama")


def test_llm_mode_rejects_relations_outside_the_pool_and_resolves_names(trained, double, make_llm, store):
    _, dataset, models, _ = trained
    import_train(store)
    llm = make_llm()
    double.reply({"text": "The sheep is an animal that lives on a farm.", "used_document_ids": ["zoo:doc:sheep"]})
    double.reply({"relations": [{"relation": "Lives In", "reason": "animals live somewhere"},
                                {"relation": "flies_to", "reason": "invented"}]})
    double.reply({"targets": [{"name": "Farm", "type": "place", "evidence": "the text says so"},
                              {"name": "Meadow", "type": "place", "evidence": "sheep graze meadows"}]})
    double.malformed("not json at all")
    double.malformed("still not json")
    options = PipelineOptions(generators=["graph", "corpus", "llm"], llm_samples=2, keep_fraction=1.0, max_per_entity=200)
    pipeline = KnowledgePipeline(GraphSnapshot.from_store(store, "zoo"), models, options, llm=llm)
    run = pipeline.run("sheep")
    assert run.relations.filtered_by == "llm" and [c.relation for c in run.relations.kept] == ["lives_in"]
    assert run.relations.rejected == ["flies_to"]
    assert run.knowledge.summary_by == "llm"
    farm = next(c for c in run.candidates if c.target_id == "zoo:farm")
    assert "llm" in farm.generators and any(v.startswith("llm:") for v in farm.voters)
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
    assert not any("llm" in c.generators for c in run.candidates)
    assert any("summary" in e for e in run.errors) and any("relation filter" in e for e in run.errors)


def test_missing_models_name_the_training_command(tmp_path):
    with pytest.raises(ModelNotTrainedError, match="kgforge train"):
        PipelineModels.load(Settings(home=tmp_path), "zoo", encoder=TextEncoder())


