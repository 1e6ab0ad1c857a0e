import json

import numpy as np
import pytest
import torch

from kg_builder.errors import InvalidInputError
from recommender.data import history_batch
from recommender.models.base import to_tensors
from recommender.store import METADATA_FILE, RecommenderNotFoundError, RecommenderStore
from recommender.train import train_student


@pytest.mark.parametrize("name,knowledge", [("sasrec", None), ("gru4rec", "random")])
def test_round_trip_gives_identical_predictions(tmp_path, cyclic, name, knowledge):
    data, _ = cyclic
    matrix = np.random.default_rng(0).normal(size=(data.n_items, 6)).astype(np.float32) if knowledge else None
    result = train_student(data=data, model=name, knowledge=matrix, knowledge_spec=knowledge or "none", seed=0,
                           epochs=2, holdout_fraction=0.1, max_len=10)
    store = RecommenderStore(root=tmp_path)
    meta = store.save("m1", result.model, item_ids=data.item_ids, dataset="synthetic", knowledge=knowledge or "none",
                      train_config=result.config, metrics=result.metrics)
    assert meta.version == 1
    loaded = store.load("m1")
    batch = to_tensors(history_batch([[1, 2, 3], [7], list(range(12))], 10))
    assert torch.equal(result.model.eval().full_sort_predict(batch), loaded.model.full_sort_predict(batch))
    assert loaded.item_ids == data.item_ids
    on_disk = json.loads((tmp_path / "m1" / "v1" / METADATA_FILE).read_text())
    for key in ("model", "model_kwargs", "dataset", "metrics", "git_hash", "created", "train_config", "knowledge"):
        assert key in on_disk
    assert on_disk["model"] == name and on_disk["metrics"]["epochs_run"] >= 1
    assert store.save("m1", result.model, item_ids=data.item_ids, dataset="synthetic").version == 2
    assert [m.version for m in store.list()] == [1, 2]


def test_missing_models_and_bad_names_are_clear_errors(tmp_path, cyclic):
    data, _ = cyclic
    store = RecommenderStore(root=tmp_path)
    with pytest.raises(RecommenderNotFoundError, match="kgforge rec train"):
        store.load("nothing")
    result = train_student(data=data, model="sasrec", epochs=1, holdout_fraction=0.0, max_len=10)
    with pytest.raises(InvalidInputError) as e:
        store.save("../escape", result.model, item_ids=data.item_ids, dataset="x")
    assert e.value.field == "name"
    with pytest.raises(InvalidInputError) as e:
        store.save("ok", result.model, item_ids=data.item_ids[:-1], dataset="x")
    assert e.value.field == "item_ids"
    # a half-written version (no metadata.json) is never listed or loaded
    (tmp_path / "half" / "v1").mkdir(parents=True)
    assert store.versions("half") == []
