"""Resuming the structural model on a grown graph (issue 13): new entities and relations get rows,
old rows keep their trained values, the optimizer state and the trained triples come back from the
model folder, and the saved metadata records what the model was trained on."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord
from kg_builder.errors import InvalidInputError
from kg_builder.models.structural import ComplEx
from kg_builder.settings import Settings
from kg_builder.training.structural import (
    TRAINING_STATE,
    init_new_entities,
    load_training_state,
    resume_structural,
    train_structural,
)


def ring(n: int = 8) -> Dataset:
    ids = [f"e{i}" for i in range(n)]
    train = [TripleRecord(ids[i], "next", ids[(i + 1) % n]) for i in range(n)]
    train += [TripleRecord(ids[i], "opposite", ids[(i + n // 2) % n]) for i in range(n)]
    return Dataset(name="ring", kind="kg", entities=[EntityRecord(i, i) for i in ids],
                   relations=[RelationRecord("next", "next"), RelationRecord("opposite", "opposite")],
                   triples={"train": train, "dev": train[:4]})


def grown_ring(base: Dataset) -> Dataset:
    """Two new entities hang off the ring (x0 after e2, x1 after x0) and a new relation appears."""
    new = [TripleRecord("e2", "next", "x0"), TripleRecord("x0", "next", "x1"), TripleRecord("x1", "before", "e0"),
           TripleRecord("e5", "before", "e4")]
    return dataclasses.replace(base, entities=[*base.entities, EntityRecord("x0", "x0"), EntityRecord("x1", "x1")],
                               relations=[*base.relations, RelationRecord("before", "before")],
                               triples={**base.triples, "train": [*base.triples["train"], *new]})


@pytest.fixture
def trained(tmp_path):
    settings = Settings(home=tmp_path)
    result = train_structural(dataset=ring(), settings=settings, rank=8, epochs=60, batch_size=16, lr=0.3,
                              regularization=0.0, max_minutes=1, seed=3)
    return settings, result


def test_grown_keeps_old_rows_and_moves_reciprocal_rows(trained):
    _, result = trained
    base: ComplEx = result.model
    grown = base.grown(["e0", "x0", "x1", "x0"], ["next", "before"])
    assert grown.entity_ids == base.entity_ids + ["x0", "x1"]
    assert grown.relation_ids == ["next", "opposite", "before"]
    n = len(base.entity_ids)
    assert torch.equal(grown.entities.weight[:n], base.entities.weight)
    # forward rows keep their numbers; reciprocal rows move from 2+i to 3+i
    assert torch.equal(grown.relations.weight[:2], base.relations.weight[:2])
    assert torch.equal(grown.relations.weight[3:5], base.relations.weight[2:4])
    assert grown.relation_row("opposite", True) == 4 and grown.old_relation_rows(2) == [0, 1, 3, 4]
    # new rows start near zero, as a fresh model's
    assert grown.entities.weight[n:].abs().max() < 0.01
    # the scores of old queries over old entities are unchanged
    assert torch.allclose(grown(torch.tensor([0]), torch.tensor([0]))[:, :n], base(torch.tensor([0]), torch.tensor([0])))


def test_new_entities_start_at_the_mean_of_their_known_neighbours(trained):
    _, result = trained
    base = result.model
    grown = base.grown(["x0", "x1"])
    n = len(base.entity_ids)
    e2, e5 = grown.entity_row("e2"), grown.entity_row("e5")
    # (e2, next, x0), (x0, opposite, e5), (x0, next, x1): x0 has two known neighbours, x1 none
    triples = torch.tensor([[e2, 0, n], [n, 1, e5], [n, 0, n + 1]])
    placed = init_new_entities(grown, triples, first_new=n)
    assert placed.tolist() == [n]  # x1 only touches another new entity: left near zero
    expected = (base.entities.weight[e2] + base.entities.weight[e5]).detach() / 2
    assert torch.allclose(grown.entities.weight[n].detach(), expected)
    assert grown.entities.weight[n + 1].abs().max() < 0.01
    assert torch.equal(grown.entities.weight[:n], base.entities.weight)  # old rows untouched
    with pytest.raises(InvalidInputError, match="init"):
        init_new_entities(grown, triples, first_new=n, method="nearest")


def test_query_init_places_a_new_entity_where_its_neighbour_looks(trained):
    _, result = trained
    base = result.model
    grown = base.grown(["x0", "x1"])
    n = len(base.entity_ids)
    triples = torch.tensor([[grown.entity_row("e2"), 0, n], [n, 0, n + 1]])
    placed = init_new_entities(grown, triples, first_new=n, method="query")
    assert placed.tolist() == [n]
    q = base.query_vectors(torch.tensor([base.entity_row("e2")]), torch.tensor([0]))[0]
    row = grown.entities.weight[n].detach()
    assert torch.allclose(row / row.norm(), q / q.norm(), atol=1e-5)
    assert row.norm() == pytest.approx(float(base.entities.weight.detach().norm(dim=1).mean()), rel=1e-4)
    assert torch.equal(grown.entities.weight[:n], base.entities.weight)
    scores = grown(torch.tensor([grown.entity_row("e2")]), torch.tensor([0]))[0].detach()
    assert scores[n] > scores[n + 1]  # x0 already ranks as e2's successor above the other new row
    assert init_new_entities(base.grown(["x0"]), triples[:1], first_new=n, method="fresh").numel() == 0


def test_resume_adds_rows_learns_the_new_triples_and_records_the_state(trained):
    settings, result = trained
    base = result.model
    state = load_training_state(settings, "structural-ring")
    assert state is not None and state["triples"].shape == (16, 3) and "entities.state_sum" in state
    config = json.loads((result.directory / "config.json").read_text())
    assert config["trained_on"]["triples"] == 16 and config["trained_on"]["entities"] == 8
    assert config["trained_on"]["source"] == "dataset"

    grown = grown_ring(ring())
    resumed = resume_structural(dataset=grown, settings=settings, epochs=40, batch_size=16, lr=0.3,
                                regularization=0.0, max_minutes=1, seed=3)
    model = resumed.model
    assert model.entity_ids[:8] == base.entity_ids and model.entity_ids[8:] == ["x0", "x1"]
    assert model.relation_ids == ["next", "opposite", "before"]
    assert model.top_k("e2", "next", k=2)[0][0] in ("e3", "x0")
    assert model.top_k("x0", "next", k=1)[0][0] == "x1"
    trained_on = resumed.metrics["trained_on"]
    assert trained_on["triples"] == 20 and trained_on["new_triples"] == 4 and trained_on["new_entities"] == 2
    assert trained_on["entities"] == 10 and trained_on["relations"] == 3
    before = trained_on["resumed_from"]
    assert before["triples"] == 16 and before["entities"] == 8 and before["optimizer_state"] is True
    assert before["new_relations"] == 1 and before["placed_by_neighbours"] == 2  # x0 after e2, x1 before e0
    # saved again under the same name: metadata, vocabulary, the grown triples for the next resume
    saved = json.loads((result.directory / "config.json").read_text())
    assert saved["trained_on"]["triples"] == 20 and saved["trained_on"]["resumed_from"]["entities"] == 8
    assert json.loads((result.directory / "vocab.json").read_text())["entities"][-2:] == ["x0", "x1"]
    assert load_training_state(settings, "structural-ring")["triples"].shape == (20, 3)
    loaded = ComplEx.load("structural-ring", settings=settings)
    assert torch.equal(loaded.entities.weight, model.entities.weight)
    # resuming again with nothing new finds no new triple or entity
    again = resume_structural(dataset=grown, settings=settings, epochs=1, batch_size=16, lr=0.3, save=False)
    assert again.metrics["trained_on"]["new_triples"] == 0 and again.metrics["trained_on"]["new_entities"] == 0


def test_resume_with_replay_trains_on_new_plus_sampled_old(trained):
    settings, _ = trained
    resumed = resume_structural(dataset=grown_ring(ring()), settings=settings, epochs=3, batch_size=4, lr=0.3,
                                replay=1.0, save=False)
    # 4 new + 4 old triples, both directions, batches of 4: 4 steps per epoch
    assert resumed.metrics["epochs_run"] == 3 and resumed.config["replay"] == 1.0
    with pytest.raises(InvalidInputError, match="replay"):
        resume_structural(dataset=grown_ring(ring()), settings=settings, epochs=1, replay=-1.0, save=False)


def test_resume_without_saved_state_falls_back_and_says_so(trained, caplog):
    settings, result = trained
    (result.directory / TRAINING_STATE).unlink()
    resumed = resume_structural(dataset=grown_ring(ring()), settings=settings, epochs=1, batch_size=16,
                                lr=0.01, save=False)
    assert resumed.metrics["trained_on"]["resumed_from"]["optimizer_state"] is False
    assert resumed.metrics["trained_on"]["new_triples"] == 20  # without the saved triples every one is new
    assert "no saved optimizer state" in caplog.text


def test_resume_needs_a_saved_model(tmp_path):
    from kg_builder.models.saved import ModelNotTrainedError

    with pytest.raises(ModelNotTrainedError, match="kgforge train structural --dataset ring"):
        resume_structural(dataset=ring(), settings=Settings(home=tmp_path), epochs=1)
