"""The KG-BERT-style cross-encoder on a tiny hand-made graph."""

import numpy as np
import pytest

from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord
from kg_builder.evaluation.kgc import Query
from kg_builder.models.cross_encoder import TripleCrossEncoder
from kg_builder.models.saved import ModelNotTrainedError
from kg_builder.settings import Settings
from kg_builder.training.reranker import train_reranker

ANIMALS = ["cat", "dog", "cow", "horse"]
FOODS = ["fish", "meat", "grass", "hay"]


def tiny() -> Dataset:
    entities = [EntityRecord(a, a, "an animal") for a in ANIMALS] + [EntityRecord(f, f, "a food") for f in FOODS]
    train = [TripleRecord(a, "eats", f) for a, f in zip(ANIMALS, FOODS)]
    return Dataset(name="tiny", kind="kg", entities=entities, relations=[RelationRecord("eats", "eats")],
                   triples={"train": train, "dev": train[:2]})


def test_training_separates_true_from_corrupted_and_round_trips(tmp_path):
    settings = Settings(home=tmp_path)
    result = train_reranker(dataset=tiny(), settings=settings, epochs=12, batch_size=8, lr=1e-4, negatives=1,
                            max_minutes=3, seed=1)
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    model = result.model
    true = model.score([TripleRecord("cat", "eats", "fish"), TripleRecord("cow", "eats", "grass")])
    false = model.score([TripleRecord("fish", "eats", "cat"), TripleRecord("grass", "eats", "cow")])
    assert true.min() > false.max()
    loaded = TripleCrossEncoder.load("reranker-tiny", settings=settings)
    triples = [TripleRecord("dog", "eats", "meat"), TripleRecord("meat", "eats", "dog")]
    assert np.allclose(loaded.score(triples), model.score(triples), atol=1e-5)
    assert loaded.config.threshold == model.config.threshold
    rerank = loaded.as_reranker()
    assert len(rerank(Query("horse", "eats", False), ["hay", "cat"])) == 2


def test_missing_model_names_the_training_command(tmp_path):
    with pytest.raises(ModelNotTrainedError, match="kgforge train reranker --dataset umls"):
        TripleCrossEncoder.load("reranker-umls", settings=Settings(home=tmp_path))
