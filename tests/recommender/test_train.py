import numpy as np
import pytest
import torch

from kg_builder.evaluation.titles import user_sequences
from recommender.metrics import model_metrics
from recommender.train import TrainingDivergedError, train_student

FAST = {"epochs": 25, "batch_size": 16, "lr": 0.01, "holdout_fraction": 0.0, "max_len": 10}


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_students_learn_a_deterministic_next_item_pattern(cyclic, name):
    data, _ = cyclic
    valid = user_sequences(data.dataset, "valid")
    untrained = train_student(data=data, model=name, seed=0, model_kwargs={"hidden_size": 32}, **{**FAST, "epochs": 1,
                                                                                                  "lr": 1e-6})
    result = train_student(data=data, model=name, seed=0, model_kwargs={"hidden_size": 32}, **FAST)
    before = model_metrics(untrained.model, valid, ks=(1, 10))
    after = model_metrics(result.model, valid, ks=(1, 10))
    # 40 items: chance HR@1 is 0.025; the cycle makes the next item certain
    assert before["hr@1"] < 0.2
    assert after["hr@1"] > 0.9, after
    assert result.metrics["seconds"] > 0 and result.metrics["peak_rss_mib"] > 0
    assert result.config["model"] == name and result.config["seed"] == 0


def test_early_stopping_uses_the_holdout_and_keeps_the_best_epoch(cyclic):
    data, _ = cyclic
    result = train_student(data=data, model="gru4rec", seed=1, **{**FAST, "holdout_fraction": 0.2, "patience": 2,
                                                                  "epochs": 40})
    scores = [h["holdout_ndcg@10"] for h in result.history]
    assert result.metrics["holdout_users"] == round(0.2 * len(data.train))
    assert result.metrics["holdout_ndcg@10"] == pytest.approx(max(scores), abs=1e-5)
    assert result.metrics["best_epoch"] == int(np.argmax(scores)) + 1


def test_same_seed_same_model_and_zero_knowledge_trains_like_id_only(cyclic):
    data, _ = cyclic
    valid = user_sequences(data.dataset, "valid")
    kwargs = {**FAST, "epochs": 2}
    a = train_student(data=data, model="sasrec", seed=4, **kwargs)
    b = train_student(data=data, model="sasrec", seed=4, **kwargs)
    z = train_student(data=data, model="sasrec", seed=4, knowledge=np.zeros((data.n_items, 8), np.float32), **kwargs)
    batch_scores = [model_metrics(m.model, valid) for m in (a, b, z)]
    assert batch_scores[0] == batch_scores[1] == batch_scores[2]
    assert torch.equal(a.model.item_embeddings(), z.model.item_embeddings())


def test_nan_loss_stops_with_an_error(cyclic):
    data, _ = cyclic
    calls = []

    def poisoned(model, interaction, loss):
        calls.append(1)
        return loss * float("nan") if len(calls) == 3 else loss * 0.0

    with pytest.raises(TrainingDivergedError, match="nothing was saved"):
        train_student(data=data, model="sasrec", seed=0, extra_loss=poisoned, **FAST)
    assert len(calls) == 3


def test_bad_arguments_name_the_field(cyclic):
    from kg_builder.errors import InvalidInputError

    data, _ = cyclic
    for kwargs, field in (({"epochs": 0}, "epochs"), ({"lr": 0.0}, "lr"), ({"model": "nope"}, "model"),
                          ({"holdout_fraction": 1.5}, "holdout_fraction")):
        with pytest.raises(InvalidInputError) as e:
            train_student(data=data, **{"model": "sasrec", **kwargs})
        assert e.value.field == field
