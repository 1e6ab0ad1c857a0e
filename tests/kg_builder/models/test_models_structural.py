"""ComplEx-N3 on a tiny hand-made graph: learns it, scores in the Scorer layout, round-trips."""

import numpy as np
import pytest
import torch

from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord
from kg_builder.errors import InvalidInputError
from kg_builder.evaluation.kgc import Query, evaluate_split
from kg_builder.models.saved import ModelNotTrainedError
from kg_builder.models.structural import ComplEx
from kg_builder.settings import Settings
from kg_builder.training.structural import train_structural


def ring(n: int = 8) -> Dataset:
    ids = [f"e{i}" for i in range(n)]
    train = [TripleRecord(ids[i], "next", ids[(i + 1) % n]) for i in range(n)]
    train += [TripleRecord(ids[i], "opposite", ids[(i + n // 2) % n]) for i in range(n)]
    return Dataset(name="ring", kind="kg", entities=[EntityRecord(i, i) for i in ids],
                   relations=[RelationRecord("next", "next"), RelationRecord("opposite", "opposite")],
                   triples={"train": train, "dev": train[:4]})


def test_learns_a_small_graph_and_round_trips(tmp_path):
    settings = Settings(home=tmp_path)
    result = train_structural(dataset=ring(), settings=settings, rank=16, epochs=150, batch_size=32, lr=0.5,
                              regularization=0.0, max_minutes=2, seed=3)
    assert result.epoch_losses[-1] < result.epoch_losses[0] / 4
    model = result.model
    assert model.top_k("e2", "next", k=1)[0][0] == "e3"
    assert model.top_k("e3", "next", inverse=True, k=1)[0][0] == "e2"  # head prediction via the reciprocal
    metrics = evaluate_split(model.score, ring(), "train").filtered["both"]
    assert metrics.hits_at_1 == 1.0
    loaded = ComplEx.load("structural-ring", settings=settings)
    queries = [Query("e1", "opposite"), Query("e5", "next", True)]
    assert np.allclose(loaded.score(queries), model.score(queries))
    assert loaded.score(queries).shape == (2, 8)


def test_n3_regularisation_shrinks_embeddings():
    data = ring()
    norms = []
    for reg in (0.0, 0.5):
        torch.manual_seed(0)
        result = train_structural(dataset=data, settings=Settings(home="/nonexistent"), rank=8, epochs=30,
                                  batch_size=16, lr=0.5, regularization=reg, max_minutes=1, save=False)
        norms.append(result.model.entities.weight.detach().norm().item())
    assert norms[1] < norms[0]


def test_unknown_names_and_missing_models_are_clear(tmp_path):
    model = ComplEx(["a", "b"], ["r"], rank=2)
    with pytest.raises(InvalidInputError, match="entity"):
        model.score([Query("zz", "r")])
    with pytest.raises(InvalidInputError, match="relation"):
        model.score([Query("a", "nope")])
    with pytest.raises(ModelNotTrainedError, match="kgforge train structural --dataset umls"):
        ComplEx.load("structural-umls", settings=Settings(home=tmp_path))
