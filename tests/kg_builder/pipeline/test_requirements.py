"""Which models a job needs, which are trained, and the command that trains each missing one."""

import pytest

from kg_builder.models.saved import ModelNotTrainedError
from kg_builder.pipeline import PipelineOptions
from kg_builder.pipeline.requirements import missing_models, plan_generators
from kg_builder.settings import Settings


def _trained(settings: Settings, *names: str) -> None:
    for name in names:
        folder = settings.home / "models" / name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")


def test_default_generators_are_the_trained_ones_and_the_notes_name_the_rest(tmp_path):
    settings = Settings(home=tmp_path)
    _trained(settings, "structural-zoo", "utility-zoo", "relations-zoo")
    plan = plan_generators(settings, "zoo", None, llm_configured=False)
    assert plan.use == ["graph", "corpus"]
    notes = " ".join(plan.notes())
    assert "kgforge train dense --dataset zoo" in notes and "KGFORGE_LLM_BASE_URL" in notes
    assert plan_generators(settings, "zoo", None, llm_configured=True).use == ["graph", "corpus", "llm"]
    # Named generators are taken as given: a missing model is then an error at submit time.
    assert plan_generators(settings, "zoo", ["dense"], llm_configured=False).use == ["dense"]
    options, notes = PipelineOptions().resolve_generators(settings, "zoo", llm_configured=False)
    assert options.generators == ["graph", "corpus"] and len(notes) == 2


def test_no_trained_generator_is_an_error_naming_the_commands(tmp_path):
    with pytest.raises(ModelNotTrainedError, match="kgforge train structural --dataset zoo"):
        PipelineOptions().resolve_generators(Settings(home=tmp_path), "zoo", llm_configured=False)


def test_missing_models_follow_the_mode_and_the_reranker_switch(tmp_path):
    settings = Settings(home=tmp_path)
    _trained(settings, "structural-zoo", "utility-zoo", "relations-zoo", "reranker-zoo", "confidence-zoo")
    assert missing_models(settings, "zoo", ["graph", "corpus"]) == []
    llm = missing_models(settings, "zoo", ["graph", "llm"], mode="llm")
    assert [(m.name, m.command) for m in llm] == [("confidence-zoo-llm", "kgforge train confidence --dataset zoo --llm")]
    dense = missing_models(settings, "zoo", ["dense"])
    assert [m.name for m in dense] == ["dense-zoo"] and "kgforge train dense --dataset zoo" in str(dense[0])
    assert [m.name for m in missing_models(settings, "zoo", ["graph"], use_reranker=False)] == [
        "confidence-zoo-no-reranker"]


def test_a_domain_without_a_corpus_runs_with_retrieval_off_and_says_so(tmp_path):
    # FB15k-237 has names only: no utility retriever can be trained, and a job still runs
    settings = Settings(home=tmp_path)
    _trained(settings, "structural-fb", "relations-fb", "reranker-fb", "confidence-fb")
    plan = plan_generators(settings, "fb", None, llm_configured=False)
    assert plan.use == ["graph"]
    assert any(n.startswith("retrieval off: utility-fb is not trained") for n in plan.notes())
    assert missing_models(settings, "fb", plan.use) == []
    assert [m.name for m in missing_models(settings, "fb", ["graph", "corpus"])] == ["utility-fb"]
