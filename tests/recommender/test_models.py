import pytest
import torch

from kg_builder.errors import InvalidInputError
from recommender.data import history_batch, pad_batch
from recommender.models import get, names, register
from recommender.models.base import to_tensors
from recommender.models.gru4rec import GRU4Rec
from recommender.models.sasrec import SASRec

N = 30


def interaction(with_targets: bool = False):
    windows = [[0, 1, 2, 3], [5, 6], [7, 8, 9, 10, 11, 12]]
    batch = pad_batch(windows, max_len=8)
    if not with_targets:
        batch.pop("target_seq")
    return to_tensors(batch)


def test_registry_finds_students_and_lists_choices_on_a_miss():
    assert get("sasrec") is SASRec and get("GRU4Rec") is GRU4Rec
    assert {"sasrec", "gru4rec"} <= set(names())
    with pytest.raises(InvalidInputError) as e:
        get("bert4rec")
    assert e.value.field == "model" and "gru4rec" in str(e.value) and "sasrec" in str(e.value)
    with pytest.raises(InvalidInputError):
        register("sasrec")(GRU4Rec)


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_contract_shapes(name):
    torch.manual_seed(0)
    model = get(name)(N, hidden_size=16, max_len=8)
    batch = interaction()
    loss = model.calculate_loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss_all = model.calculate_loss(interaction(with_targets=True))
    assert loss_all.ndim == 0 and torch.isfinite(loss_all)
    model.eval()
    assert model.predict(batch).shape == (3,)
    scores = model.full_sort_predict(batch)
    assert scores.shape == (3, N)
    assert model.hidden(batch).shape == (3, 16)
    assert model.item_embeddings().shape == (N, 16)
    # predict agrees with the matching column of full_sort_predict
    cols = batch["item_id"] - 1
    assert torch.allclose(model.predict(batch), scores[torch.arange(3), cols], atol=1e-5)


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_outputs_are_causal_and_ignore_padding(name):
    """The last real position's output does not depend on what comes after it (padding width)."""
    torch.manual_seed(0)
    model = get(name)(N, hidden_size=16, max_len=10).eval()
    narrow = to_tensors(history_batch([[1, 2, 3]], 10))
    wide = to_tensors(history_batch([[1, 2, 3], list(range(10))], 10))
    assert torch.allclose(model.hidden(narrow)[0], model.hidden(wide)[0], atol=1e-5)


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_zero_knowledge_equals_id_only_and_real_knowledge_changes_outputs(name):
    batch = interaction()
    torch.manual_seed(3)
    plain = get(name)(N, hidden_size=16, max_len=8).eval()
    torch.manual_seed(3)
    zero = get(name)(N, hidden_size=16, max_len=8, knowledge=torch.zeros(N, 12)).eval()
    torch.manual_seed(3)
    real = get(name)(N, hidden_size=16, max_len=8, knowledge=torch.randn(N, 12)).eval()
    assert torch.equal(plain.full_sort_predict(batch), zero.full_sort_predict(batch))
    assert not torch.allclose(plain.full_sort_predict(batch), real.full_sort_predict(batch), atol=1e-4)
    # the supplement is added to the ID embedding, never replaces it
    assert torch.allclose(real.item_embeddings(),
                          real.item_embedding.weight[1:] + real.knowledge_projection(real.knowledge[1:]))


def test_knowledge_of_the_wrong_shape_is_rejected_naming_the_field():
    with pytest.raises(InvalidInputError) as e:
        SASRec(N, knowledge=torch.zeros(N - 1, 4))
    assert e.value.field == "knowledge"
    with pytest.raises(InvalidInputError):
        SASRec(N, knowledge=torch.full((N, 4), float("nan")))
