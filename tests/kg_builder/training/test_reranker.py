"""Reranker training on a tiny hand-made graph: examples (hard negatives from ComplEx's candidates,
never known, never from the test split), the trainer with its wall-clock budget, the dev threshold
and report, and the saved folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord
from kg_builder.errors import InvalidInputError
from kg_builder.evaluation.triples import best_threshold, corrupt_triples, hard_negatives
from kg_builder.models.cross_encoder import CrossEncoderConfig, TripleCrossEncoder
from kg_builder.settings import Settings
from kg_builder.training.reranker import (
    complex_top_pairs,
    complex_top_tails,
    known_triples,
    train_reranker,
    training_examples,
)
from kg_builder.training.structural import train_structural

ANIMALS = ["cat", "dog", "cow", "horse", "goat", "sheep"]
FOODS = ["fish", "meat", "grass", "hay"]
EATS = [("cat", "fish"), ("dog", "meat"), ("cow", "grass"), ("horse", "hay"), ("goat", "grass"), ("cat", "meat")]
TINY = CrossEncoderConfig(max_length=32, text_chars=40)


def tiny(*, with_test: bool = True) -> Dataset:
    entities = ([EntityRecord(a, a, "an animal that eats") for a in ANIMALS]
                + [EntityRecord(f, f, "a food that animals eat") for f in FOODS])
    train = [TripleRecord(a, "eats", f) for a, f in EATS] + [TripleRecord("dog", "chases", "cat")]
    triples = {"train": train, "dev": [TripleRecord("sheep", "eats", "grass"), TripleRecord("horse", "eats", "grass")]}
    if with_test:
        triples["test"] = [TripleRecord("sheep", "eats", "hay"), TripleRecord("dog", "eats", "fish")]
    return Dataset(name="tiny", kind="kg", entities=entities,
                   relations=[RelationRecord("eats", "eats"), RelationRecord("chases", "chases")], triples=triples)


@pytest.fixture(scope="module")
def structural(tmp_path_factory):
    torch.set_num_threads(1)
    return train_structural(dataset=tiny(), settings=Settings(home=tmp_path_factory.mktemp("s")), rank=8, epochs=30,
                            lr=0.3, regularization=0.0, max_minutes=1, save=False).model


@pytest.fixture(scope="module")
def trained(tmp_path_factory, structural):
    """One tiny reranker for the module (tests read it, never change it)."""
    torch.set_num_threads(1)
    settings = Settings(home=tmp_path_factory.mktemp("home"))
    result = train_reranker(dataset=tiny(), settings=settings, epochs=8, batch_size=8, lr=2e-4, config=TINY,
                            structural=structural, hard_k=6, max_minutes=5, seed=1)
    return settings, result


def test_hard_negatives_are_complex_candidates_never_known_and_never_from_test(structural):
    dataset = tiny()
    top_tails = complex_top_tails(structural, k=6)
    examples = training_examples(dataset, top_tails, negatives=1, hard=1, same_range=1, seed=3)
    counts = examples.counts
    assert counts["positives"] == 7 and counts["hard"] > 0 and counts["range"] > 0 and counts["corrupted"] > 0
    known = {(t.head, t.relation, t.tail) for t in known_triples(dataset)}
    hard = [t for t, kind in zip(examples.triples, examples.kinds, strict=True) if kind == "hard"]
    ranked = dict(zip([(t.head, t.relation) for t in hard], top_tails([(t.head, t.relation) for t in hard]),
                      strict=True))
    for t in hard:
        assert t.tail in ranked[(t.head, t.relation)]  # proposed by the generator
        # and it is the generator's best false candidate(s): nothing false ranks above it unused
        assert (t.head, t.relation, t.tail) not in known
    negatives = [t for t, y in zip(examples.triples, examples.labels, strict=True) if y == 0.0]
    assert not {(t.head, t.relation, t.tail) for t in negatives} & known
    assert len(negatives) == len(set(negatives))
    # labels never depend on the test split: the same examples without it on disk
    again = training_examples(tiny(with_test=False), top_tails, negatives=1, hard=1, same_range=1, seed=3)
    assert again.triples == examples.triples and again.labels == examples.labels
    # hard negatives of a query are its best-ranked false tails
    cat = [t.tail for t in hard if (t.head, t.relation) == ("cat", "eats")]
    false_ranked = [c for c in top_tails([("cat", "eats")])[0] if c != "cat" and ("cat", "eats", c) not in known]
    assert cat == false_ranked[:len(cat)] and len(cat) == 2  # two true triples -> two negatives


def test_head_negatives_are_the_heads_best_false_triples_over_every_relation(structural):
    dataset = tiny()
    top_pairs = complex_top_pairs(structural)
    examples = training_examples(dataset, complex_top_tails(structural, k=6), negatives=0, hard=0, same_range=0,
                                 head=1, top_pairs=top_pairs, seed=3)
    known = {(t.head, t.relation, t.tail) for t in known_triples(dataset)}
    head = [t for t, kind in zip(examples.triples, examples.kinds, strict=True) if kind == "head"]
    assert examples.counts["head"] == len(head) > 0 and examples.counts["hard"] == 0
    assert not {(t.head, t.relation, t.tail) for t in head} & known
    # relations other than the true triple's own appear (dog's are "eats" and "chases")
    assert {t.relation for t in head} == {"eats", "chases"}
    # each head's negatives are its best-ranked unknown (relation, tail) pairs, one per true triple
    everything = top_pairs(["cat"], [len(ANIMALS + FOODS) * 2])[0]
    cat = [(t.relation, t.tail) for t in head if t.head == "cat"]
    unknown = [p for p in everything if p[1] != "cat" and ("cat", *p) not in known]
    assert len(cat) == 2 and cat == unknown[:2]


def test_training_learns_saves_and_round_trips(trained):
    settings, result = trained
    assert result.metrics["steps"] == result.metrics["planned_steps"] and not result.stopped_by_budget
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    model = result.model
    dataset = tiny()
    true = model.score(dataset.triples["train"][:6])
    false = model.score([TripleRecord(f, "eats", a) for a, f in EATS])  # reversed: a food eating an animal
    assert true.mean() > false.mean()
    directory = settings.home / "models" / "reranker-tiny"
    for part in ("config.json", "entities.json", "training.json", "cross_encoder/config.json",
                 "cross_encoder/model.safetensors"):
        assert (directory / part).exists(), part
    loaded = TripleCrossEncoder.load("reranker-tiny", settings=settings)
    triples = [TripleRecord("dog", "eats", "meat"), TripleRecord("meat", "eats", "dog")]
    assert np.allclose(loaded.score(triples), model.score(triples), atol=1e-5)
    assert loaded.threshold_logit == model.threshold_logit == result.metrics["dev_threshold_logit"]
    assert loaded.threshold == pytest.approx(1 / (1 + np.exp(-loaded.threshold_logit)))
    assert loaded.config == model.config and loaded.meta["metrics"]["steps"] == result.metrics["steps"]
    # texts from the pipeline ("name: description", unknown entities too) score like ids do
    text = loaded.score_texts(["dog: an animal that eats"], ["eats"], ["meat: a food that animals eat"])
    assert text[0] == pytest.approx(loaded.score([TripleRecord("dog", "eats", "meat")])[0], abs=1e-5)
    assert loaded.score_texts(["a new thing"], ["eats"], ["hay"]).shape == (1,)


def test_threshold_is_the_best_dev_accuracy_over_true_corrupted_and_hard(trained, structural):
    _, result = trained
    model, dataset = result.model, tiny()
    dev, known = dataset.triples["dev"], known_triples(dataset)
    corrupted = corrupt_triples(dev, [e.id for e in dataset.entities], known, per_positive=1, seed=1)
    hard = hard_negatives(dev, complex_top_tails(structural, k=6), known, per_positive=1)
    assert result.metrics["dev_counts"] == {"true": 2, "corrupted": len(corrupted), "hard": len(hard)}
    scores = model.score([*dev, *corrupted, *hard]).astype(np.float64)
    labels = np.r_[np.ones(len(dev)), np.zeros(len(corrupted) + len(hard))]
    assert model.threshold_logit == pytest.approx(best_threshold(scores, labels))
    best = max(((scores > t) == labels).mean() for t in np.r_[scores - 1e-6, scores + 1e-6])
    assert result.metrics["dev_accuracy"] == pytest.approx(best)
    pos, hard_scores = scores[:len(dev)], scores[len(dev) + len(corrupted):]
    pairs = [(p > n) + 0.5 * (p == n) for p in pos for n in hard_scores]
    assert result.metrics["dev_auc_hard"] == pytest.approx(np.mean(pairs))
    assert result.metrics["dev_accuracy_hard"] == pytest.approx(
        np.mean(np.r_[pos > model.threshold_logit, hard_scores <= model.threshold_logit]))
    assert 0.0 <= result.metrics["dev_accuracy_corrupted"] <= 1.0
    balanced = np.r_[pos, hard_scores]
    hard_labels = np.r_[np.ones(len(pos)), np.zeros(len(hard_scores))]
    assert result.metrics["dev_accuracy_hard_balanced"] == pytest.approx(
        max(((balanced > t) == hard_labels).mean() for t in np.r_[balanced - 1e-6, balanced + 1e-6]))
    rerank = result.metrics["dev_rerank"]
    assert rerank["queries"] == 2 and rerank["k"] == 10
    assert 0 < rerank["first_stage_mrr"] <= 1 and 0 < rerank["combined_mrr"] <= 1


def test_the_budget_stops_training(tmp_path, structural):
    torch.set_num_threads(1)
    result = train_reranker(dataset=tiny(), settings=Settings(home=tmp_path), epochs=500, batch_size=4, config=TINY,
                            structural=structural, max_minutes=0.02, rank_queries=0, save=False)
    assert result.stopped_by_budget
    assert 1 <= result.metrics["steps"] < result.metrics["planned_steps"]
    assert "dev_rerank" not in result.metrics and "dev_accuracy" in result.metrics


def test_bad_arguments_name_the_field(tmp_path):
    with pytest.raises(InvalidInputError, match="negatives"):
        train_reranker(dataset=tiny(), settings=Settings(home=tmp_path), negatives=0, hard_negatives_per_positive=0,
                       range_negatives_per_positive=0, head_negatives_per_positive=0)
    with pytest.raises(InvalidInputError, match="head_negatives"):
        train_reranker(dataset=tiny(), settings=Settings(home=tmp_path), head_negatives_per_positive=-1)
    empty = Dataset(name="e", kind="kg", entities=tiny().entities, relations=tiny().relations, triples={})
    with pytest.raises(InvalidInputError, match="dataset"):
        train_reranker(dataset=empty, settings=Settings(home=tmp_path))
