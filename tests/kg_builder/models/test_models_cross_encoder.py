"""The KG-BERT-style cross-encoder (a sentence-transformers CrossEncoder) on a tiny hand-made graph:
text form, scoring, save/load without network, and the errors a user meets. Training is tested in
tests/kg_builder/training/test_reranker.py."""

import json

import numpy as np
import pytest

from kg_builder.datasets import EntityRecord, RelationRecord, TripleRecord
from kg_builder.errors import InvalidInputError, KGForgeError
from kg_builder.evaluation.kgc import Query
from kg_builder.models.cross_encoder import CrossEncoderConfig, TripleCrossEncoder, cut_text
from kg_builder.models.saved import ModelNotTrainedError
from kg_builder.settings import Settings

ANIMALS = ["cat", "dog", "cow", "horse"]
FOODS = ["fish", "meat", "grass", "hay"]
ENTITIES = ([EntityRecord(a, a.title(), "an animal " * 40) for a in ANIMALS]
            + [EntityRecord(f, f.title(), "a food") for f in FOODS])
RELATIONS = [RelationRecord("eats", "eats the food")]


@pytest.fixture(scope="module")
def model():
    return TripleCrossEncoder(ENTITIES, RELATIONS, CrossEncoderConfig(max_length=48, text_chars=60, threshold=0.25))


def test_triples_become_head_and_relation_sep_tail_pairs_cut_at_word_boundaries(model):
    heads, relations, tails = model.triple_texts([TripleRecord("cat", "eats", "fish")])
    assert heads[0].startswith("Cat: an animal an animal") and tails == ["Fish: a food"]
    (first, second), = model.pairs(heads, relations, tails)
    assert first == cut_text(heads[0], 60) and len(first) <= 60 and heads[0][len(first)] == " "
    assert second == "eats the food [SEP] Fish: a food"
    with pytest.raises(InvalidInputError, match="triple"):
        model.score([TripleRecord("cat", "eats", "unicorn")])
    with pytest.raises(InvalidInputError, match="triples"):
        model.score_texts(["a"], ["b"], [])


def test_scores_are_logits_and_threshold_has_both_forms(model):
    logits = model.score([TripleRecord("cat", "eats", "fish"), TripleRecord("fish", "eats", "cat")])
    assert logits.dtype == np.float32 and logits.shape == (2,)
    assert np.allclose(model.probability([TripleRecord("cat", "eats", "fish")]), 1 / (1 + np.exp(-logits[0])), atol=1e-6)
    assert model.threshold_logit == 0.25 and model.threshold == pytest.approx(1 / (1 + np.exp(-0.25)))
    assert model.score_texts([], [], []).shape == (0,)
    rerank = model.as_reranker()
    forward = rerank(Query("horse", "eats", False), ["hay", "cat"])
    inverse = rerank(Query("hay", "eats", True), ["horse"])
    assert len(forward) == 2 and inverse[0] == pytest.approx(forward[0], abs=1e-5)


def test_save_and_load_round_trip_offline(model, tmp_path):
    settings = Settings(home=tmp_path)
    model.meta["metrics"] = {"dev_accuracy": 0.5}
    directory = model.save(tmp_path / "models" / "reranker-tiny")
    config = json.loads((directory / "config.json").read_text())
    assert config["kind"] == "triple-cross-encoder" and config["cross_encoder"]["threshold"] == 0.25
    assert (directory / "cross_encoder" / "model.safetensors").exists()
    loaded = TripleCrossEncoder.load("reranker-tiny", settings=settings)
    triples = [TripleRecord("dog", "eats", "meat"), TripleRecord("meat", "eats", "dog")]
    assert np.allclose(loaded.score(triples), model.score(triples), atol=1e-5)
    assert loaded.config == model.config and loaded.meta["metrics"] == {"dev_accuracy": 0.5}
    assert TripleCrossEncoder.load(directory).threshold_logit == 0.25  # by path too


def test_missing_old_and_foreign_folders_say_what_to_do(tmp_path):
    settings = Settings(home=tmp_path)
    with pytest.raises(ModelNotTrainedError, match="kgforge train reranker --dataset umls"):
        TripleCrossEncoder.load("reranker-umls", settings=settings)
    old = tmp_path / "models" / "reranker-umls"
    old.mkdir(parents=True)
    (old / "config.json").write_text(json.dumps({"kind": "triple-cross-encoder", "cross_encoder": {}}))
    (old / "model.safetensors").write_bytes(b"")
    with pytest.raises(KGForgeError, match="older kgforge.*kgforge train reranker --dataset umls"):
        TripleCrossEncoder.load("reranker-umls", settings=settings)
    (old / "config.json").write_text(json.dumps({"kind": "complex"}))
    with pytest.raises(KGForgeError, match="not a 'triple-cross-encoder'"):
        TripleCrossEncoder.load("reranker-umls", settings=settings)
