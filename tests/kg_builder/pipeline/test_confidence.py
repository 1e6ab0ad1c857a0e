"""The calibrated confidence: round trip, the floor chosen for a target precision, modes."""

import numpy as np
import pytest

from kg_builder.pipeline.confidence import FEATURES, ConfidenceModel, ModeMismatchError
from kg_builder.pipeline.pipeline import EntityRun, PipelineOptions, ScoredTriple, select
from kg_builder.pipeline.relations import RelationSelection
from kg_builder.pipeline.snapshot import EntityInfo


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    y = (x[:, 0] + 0.5 * rng.normal(size=n) > 1.0).astype(int)
    groups = [f"h{i % 40}" for i in range(n)]
    return x, y, groups


def test_confidence_model_round_trips_with_its_floor_data(tmp_path):
    x, y, groups = _data()
    model = ConfidenceModel.fit(x, y, groups=groups)
    model.save(tmp_path / "confidence-x")
    loaded = ConfidenceModel.load(tmp_path / "confidence-x")
    assert np.allclose(loaded.predict(x), model.predict(x))
    assert ((model.predict(x) > 0.5) == y).mean() > 0.8
    assert loaded.floor_for(0.7) == pytest.approx(model.floor_for(0.7))
    with pytest.raises(Exception, match="both true and false"):
        ConfidenceModel.fit(x, np.zeros(len(y), int))


def test_floor_reaches_the_target_precision_out_of_fold_and_rises_with_it():
    x, y, groups = _data()
    model = ConfidenceModel.fit(x, y, groups=groups)
    assert model.meta["out_of_fold"] and not np.allclose(model.oof_scores, model.predict(x))
    targets = (0.5, 0.7, 0.8)
    floors = [model.floor_for(p) for p in targets]
    assert floors[0] <= floors[1] <= floors[2] and floors[0] < 1.0
    for target, floor in zip(targets, floors):
        if floor < 1.0:  # the 95 % lower bound of the kept set's precision reached the target
            kept = model.oof_scores >= floor
            assert kept.sum() >= 10 and y[kept].mean() > target
    # A target nothing reaches keeps nothing.
    assert model.floor_for(1.0, min_kept=len(y)) == 1.0


def test_a_model_of_one_mode_refuses_the_other(tmp_path):
    x, y, groups = _data()
    model = ConfidenceModel.fit(x, y, groups=groups, mode="offline")
    model.meta["domain"] = "zoo"
    model.check_mode("offline")
    with pytest.raises(ModeMismatchError, match="kgforge train confidence --dataset zoo --llm"):
        model.check_mode("llm")
    llm_model = ConfidenceModel.fit(x, y, groups=groups, mode="llm")
    llm_model.save(tmp_path / "confidence-zoo-llm")
    assert ConfidenceModel.load(tmp_path / "confidence-zoo-llm").mode == "llm"
    with pytest.raises(ModeMismatchError):
        ConfidenceModel.load(tmp_path / "confidence-zoo-llm").check_mode("offline")


def _run(scores):
    candidates = [ScoredTriple(head="zoo:s", head_name="s", relation="r", target_id=f"zoo:t{i}", target_name=f"t{i}",
                               generators=["graph"], sources=[], voters=["graph"],
                               features=[s] + [0.0] * (len(FEATURES) - 1))
                  for i, s in enumerate(scores)]
    return EntityRun(entity=EntityInfo("zoo:s", "s"), knowledge={"entity": EntityInfo("zoo:s", "s"), "in_graph": True},
                     relations=RelationSelection(candidates=[], kept=[], filtered_by="retrieval"),
                     proposals=len(scores), candidates=candidates)


def test_select_keeps_what_clears_the_floor_capped_per_entity_and_says_when_nothing_does():
    x, y, groups = _data()
    model = ConfidenceModel.fit(x, y, groups=groups, features=("reranker_logit",))
    floor = model.floor_for(0.7)
    run = select(_run([3.0, 2.9, 2.8, 2.7, -2.0]), PipelineOptions(max_per_entity=3), model)
    assert [c.target_name for c in run.kept] == ["t0", "t1", "t2"]
    assert all(c.confidence >= floor for c in run.kept)
    empty = select(_run([-3.0, -2.5]), PipelineOptions(), model)
    assert not empty.kept and "nothing is written" in empty.errors[-1]
    explicit = select(_run([3.0, -3.0]), PipelineOptions(min_confidence=0.0), model)
    assert len(explicit.kept) == 2


def test_unlabelled_truth_is_corrected_by_the_label_share():
    """Half of the true rows are labelled (the others sit in a held-out split the calibration cannot
    see): dividing by the share recovers P(true), and the floor reaches the target in truth."""
    rng = np.random.default_rng(3)
    x, truth, groups = _data(n=4000, seed=3)
    labelled = truth * (rng.random(len(truth)) < 0.5)
    naive = ConfidenceModel.fit(x, labelled, groups=groups)
    corrected = ConfidenceModel.fit(x, labelled, groups=groups, label_share=0.5)
    assert corrected.predict(x).mean() == pytest.approx(truth.mean(), rel=0.25)
    assert naive.predict(x).mean() < 0.7 * truth.mean()
    floor = corrected.floor_for(0.7)
    kept = corrected.predict(x) >= floor
    assert kept.sum() >= 10 and truth[kept].mean() >= 0.65
    assert naive.floor_for(0.7) > floor  # the naive floor asks for more than the target
    with pytest.raises(Exception, match="label_share"):
        ConfidenceModel.fit(x, labelled, label_share=0.0)
