"""The ``llm`` generator and LLM consistency voting, against the OpenAI-compatible TEST DOUBLE
(``tests/support/openai_double.py``: a scripted HTTP server, not a model).

What a user would notice: identical LLM answers count once, different models or different answers
count separately; the seeds, temperature and models really go out in the requests; every LLM
triple says which prompt version and which evidence produced it; one entity's calls overlap in
time within the LLM's bound; one unusable name costs that name, not the entity or the job.
"""

from __future__ import annotations

import logging
import time

import kgforge_zoo
import pytest

from kg_builder.llm import Sampling
from kg_builder.pipeline import GraphSnapshot, KnowledgePipeline, PipelineModels, PipelineOptions
from kg_builder.pipeline.generators import LLMGenerator, Proposal, vote
from kg_builder.pipeline.generators.base import PROVENANCE_CHARS
from kg_builder.pipeline.knowledge import Knowledge
from kg_builder.pipeline.relations import RelationCandidate
from kg_builder.settings import Settings

pytestmark = pytest.mark.timeout(60)  # the double answers in milliseconds

EATS = RelationCandidate(relation="eats", description="eats (food)", similarity=1.0, prior=1.0, retrieval_score=1.0)
LIVES_IN = RelationCandidate(relation="lives_in", description="lives in (place)", similarity=1.0, prior=1.0,
                             retrieval_score=1.0)


def targets(*names: str, evidence: str = "sheep graze on it") -> dict:
    return {"targets": [{"name": n, "type": "food", "evidence": f"{evidence} ({n})"} for n in names]}


@pytest.fixture(scope="module")
def snapshot() -> GraphSnapshot:
    return GraphSnapshot.from_dataset(kgforge_zoo.zoo(), ("train",))


@pytest.fixture
def sheep(snapshot) -> Knowledge:
    return Knowledge(entity=snapshot.entities["zoo:sheep"], in_graph=True)


def generator(snapshot, llm, samples=3) -> LLMGenerator:
    # skip_known off: the zoo's sheep already eats grass; here every named target should count.
    return LLMGenerator(snapshot=snapshot, skip_known=False, llm=llm, samples=samples)


def by_name(voted):
    return {v.target_name.lower(): v for v in voted}


# --- samples differ, and the requests say so ---------------------------------------------------------
def test_identical_samples_collapse_to_one_vote(double, make_llm, snapshot, sheep):
    double.answer_by(lambda body: targets("Hay", "Clover"))
    gen = generator(snapshot, make_llm(sample_temperature=0.7, sample_seed=10))

    proposals = gen.propose(sheep, EATS, k=5)

    assert sorted(r.seed for r in double.requests) == [10, 11, 12]
    assert {r.temperature for r in double.requests} == {0.7}
    assert len(proposals) == 6  # three samples, two targets each
    hay = by_name(vote(proposals))["hay"]
    assert hay.voters == [f"llm:{double.model}#0"] and hay.votes == 1
    assert hay.provenance()["llm_samples"] == 3 and hay.provenance()["llm_votes"] == 1


def test_diverse_samples_vote_once_per_distinct_answer(double, make_llm, snapshot, sheep):
    answers = {0: targets("Hay", "Clover"), 1: targets("clover", "HAY"), 2: targets("Hay", "Oats")}
    double.answer_by(lambda body: answers[body["seed"]])
    proposals = generator(snapshot, make_llm()).propose(sheep, EATS, k=5)

    voted = by_name(vote(proposals))
    # Samples 0 and 1 name the same set (names are normalised; order does not matter): one group.
    assert voted["hay"].voters == [f"llm:{double.model}#0", f"llm:{double.model}#2"]
    assert voted["hay"].votes == 2 and voted["clover"].votes == 1 and voted["oats"].votes == 1


def test_two_models_that_agree_are_two_votes(double, make_llm, snapshot, sheep):
    double.answer_by(lambda body: targets("Hay"))
    llm = make_llm(sample_models=["model-a", "model-b"])
    proposals = generator(snapshot, llm, samples=2).propose(sheep, EATS, k=5)

    assert sorted((r.model, r.seed) for r in double.requests) == [
        ("model-a", 0), ("model-a", 1), ("model-b", 0), ("model-b", 1)]
    (hay,) = vote(proposals)
    assert hay.voters == ["llm:model-a#0", "llm:model-b#0"] and hay.votes == 2
    assert hay.provenance()["llm_models"] == ["model-a", "model-b"]


def test_at_temperature_zero_each_model_is_asked_once(double, make_llm, snapshot, sheep):
    double.answer_by(lambda body: targets("Hay"))
    proposals = generator(snapshot, make_llm(sample_temperature=0.0), samples=3).propose(sheep, EATS, k=5)
    (request,) = double.requests
    assert request.temperature == 0.0 and request.seed == 0
    assert vote(proposals)[0].votes == 1


def test_an_llm_vote_adds_to_the_other_generators_votes():
    def p(generator, target, sample=0, model="m"):
        return Proposal(relation="eats", target_name=target, generator=generator, model=model, score=1.0, rank=1,
                        sample=sample)

    # llm sample 0 says {hay}, sample 1 says {hay, oats}: different answers, two votes for hay.
    voted = by_name(vote([p("graph", "hay"), p("corpus", "hay"), p("llm", "hay", 0), p("llm", "hay", 1),
                          p("llm", "oats", 1)]))
    assert voted["hay"].voters == ["graph", "corpus", "llm:m#0", "llm:m#1"]
    assert voted["oats"].voters == ["llm:m#1"]
    # Answers are compared per relation: the same sample agreeing on another relation changes nothing.
    other = vote([p("llm", "hay", 0), p("llm", "hay", 1), p("llm", "farm", 0).model_copy(update={"relation": "x"})])
    assert by_name(other)["hay"].votes == 1
    assert vote([p("graph", "hay")])[0].provenance() == {}


# --- provenance ------------------------------------------------------------------------------------------
def test_every_llm_proposal_records_prompt_version_and_bounded_evidence(double, make_llm, snapshot, sheep):
    long = "The text says sheep eat hay. " * 100
    answers = {0: {"targets": [{"name": "Hay", "type": "food", "evidence": long}]},
               1: {"targets": [{"name": "Hay", "type": "food", "evidence": "Its neighbours eat hay."},
                               {"name": "Clover", "type": "food", "evidence": "Sheep graze clover."}]}}
    double.answer_by(lambda body: answers[body["seed"]])
    proposals = generator(snapshot, make_llm(sample_temperature=0.5), samples=2).propose(sheep, EATS, k=5)

    assert all(p.prompt_version == "entity_generation@v1" and p.llm_evidence for p in proposals)
    prov = by_name(vote(proposals))["hay"].provenance()
    assert prov["llm_prompt"] == "entity_generation@v1"
    assert prov["llm_models"] == [double.model] and prov["llm_seeds"] == [0, 1] and prov["llm_temperature"] == 0.5
    assert prov["llm_votes"] == 2 and prov["llm_samples"] == 2
    # Both samples ranked Hay first; sample 0's (long) evidence comes first and the text is cut.
    assert prov["llm_evidence"].startswith("The text says sheep eat hay. The text says")
    assert len(prov["llm_evidence"]) == PROVENANCE_CHARS and prov["llm_evidence"].endswith("\u2026")
    assert by_name(vote(proposals))["clover"].provenance()["llm_evidence"] == "Sheep graze clover."
    for value in prov.values():  # what an edge property may hold
        assert isinstance(value, (str, int, float)) or all(isinstance(v, (str, int, float)) for v in value)


# --- concurrency and usage --------------------------------------------------------------------------------
def test_one_entitys_calls_run_concurrently_within_the_llm_bound(double, make_llm, snapshot, sheep):
    double.answer_by(lambda body: targets("Hay"), delay=0.4, usage=(100, 10))
    llm = make_llm(max_concurrency=4)
    started = time.monotonic()
    proposals = generator(snapshot, llm, samples=3).propose_many(sheep, [EATS, LIVES_IN], k=5)
    elapsed = time.monotonic() - started

    assert len(double.requests) == 6
    assert double.max_in_flight == 4  # overlapping, and never above max_concurrency
    assert elapsed < 6 * 0.4 * 0.6, f"6 calls of 0.4 s took {elapsed:.2f} s: they did not overlap"
    assert [p.relation for p in proposals] == ["eats"] * 3 + ["lives_in"] * 3  # relation order is kept
    assert llm.meter.requests == 6 and llm.meter.usage.total_tokens == 6 * 110


def test_a_failed_sample_costs_that_sample_only(double, make_llm, snapshot, sheep):
    double.answer_by(lambda body: "this is not json" if body.get("seed") == 1 else targets("Hay"))
    gen = generator(snapshot, make_llm(max_output_retries=1), samples=3)
    proposals = gen.propose(sheep, EATS, k=5)

    assert sorted(p.sample for p in proposals) == [0, 2]
    (note,) = gen.errors
    assert "1 of 3 sample(s)" in note and "eats" in note and "sheep" in note


# --- bad names ------------------------------------------------------------------------------------------
def test_a_punctuation_only_name_drops_that_target_and_the_others_survive(double, make_llm, snapshot, sheep,
                                                                          caplog):
    double.answer_by(lambda body: targets("!!!", "Hay", "   ", "\u2014 \u2026", "Clo\x00ver", "Oats"))
    gen = generator(snapshot, make_llm(), samples=1)
    with caplog.at_level(logging.WARNING, logger="kg_builder.pipeline"):
        proposals = gen.propose(sheep, EATS, k=10)

    assert [p.target_name for p in proposals] == ["Hay", "Oats"] and [p.rank for p in proposals] == [1, 2]
    assert len(gen.errors) == 4 and all("dropped" in e and "sheep" in e for e in gen.errors)
    assert "'!!!'" in gen.errors[0] and "no letter or digit" in gen.errors[0]
    assert "control characters" in gen.errors[3]
    assert sum("dropped" in r.getMessage() for r in caplog.records) == 4


@pytest.mark.timeout(900)  # trains the session's zoo models when it runs first
def test_a_job_with_a_punctuation_only_name_still_writes_the_rest(zoo_home, double, make_llm, store):
    settings = Settings(home=zoo_home)
    options = PipelineOptions(generators=["graph", "corpus", "llm"], llm_samples=1, keep_fraction=1.0,
                              relations=["lives_in"])
    models = PipelineModels.load(settings, "zoo", options)
    kgforge_zoo.import_zoo(store)

    def answer(body):
        text = body["messages"][-1]["content"]
        if "Write a summary" in text:
            return {"text": "The sheep lives on a farm.", "used_document_ids": []}
        if "Candidate relations" in text:
            return {"relations": [{"relation": "lives_in", "reason": "animals live somewhere"},
                                  {"relation": "...", "reason": "a bad relation name"}]}
        return {"targets": [{"name": "?!", "type": "place", "evidence": "none"},
                            {"name": "Meadow", "type": "place", "evidence": "sheep graze meadows"}]}

    double.answer_by(answer)
    pipeline = KnowledgePipeline(GraphSnapshot.from_store(store, "zoo"), models, options, llm=make_llm())
    run = pipeline.run("sheep")

    assert run.relations.filtered_by == "llm" and run.relations.rejected == ["..."]
    meadow = next(c for c in run.candidates if c.target_name == "Meadow")
    assert meadow.provenance["llm_prompt"] == "entity_generation@v1"
    assert not any(c.target_name == "?!" for c in run.candidates)
    assert any("'?!'" in e and "dropped" in e for e in run.errors)
    meadow.kept = True
    pipeline.write(store, [run], job_id="job-bad-name")
    (node,) = store.find_nodes_by_name("meadow")
    edge = next(e for e in store.neighbourhood("zoo:sheep") if e.tail == node.id)
    assert edge.properties["llm_prompt"] == "entity_generation@v1"
    assert edge.properties["llm_evidence"] == "sheep graze meadows"


def test_sampling_is_sent_per_request(double, make_llm):
    double.reply(targets("Hay"))
    make_llm(temperature=0.0).invoke("x", sampling=Sampling(model="other-model", temperature=0.9, seed=42))
    (request,) = double.requests
    assert (request.model, request.temperature, request.seed) == ("other-model", 0.9, 42)
