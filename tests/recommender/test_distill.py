"""Distillation: DLLM2Rec's importance weights and losses, SLMRec's feature terms, REKI/KAR's
hybrid-expert adapter, the trainer hooks, and round trips of distilled students."""

import numpy as np
import pytest
import torch

from kg_builder.errors import InvalidInputError
from kg_builder.evaluation.titles import Sequences
from recommender.data import history_batch, pad_batch, training_windows
from recommender.distill import (
    DistillConfig,
    Distiller,
    HybridExpertAdapter,
    _mask_history,
    freeze_kar,
    importance_weights,
    kar_prepare,
    parse_method,
    student_layers,
)
from recommender.metrics import model_metrics
from recommender.models import get
from recommender.models.base import to_tensors
from recommender.store import RecommenderStore
from recommender.teachers.text_teacher import TextTeacher
from recommender.train import train_student

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _valid(sequences) -> Sequences:
    return Sequences(users=[f"u{u:03d}" for u in range(len(sequences))], histories=[s[:-1] for s in sequences],
                     targets=np.array([s[-1] for s in sequences]))


@pytest.fixture
def oracle(cyclic):
    """A small teacher trained (user tower only, fixed random item vectors) on the cyclic data."""
    data, sequences = cyclic
    torch.manual_seed(0)
    teacher = TextTeacher(data.n_items, dim=16, max_len=10, dropout=0.0)
    teacher.item_vectors.copy_(torch.nn.functional.normalize(torch.randn(data.n_items, 16), dim=-1))
    optimiser = torch.optim.Adam(teacher.user_tower.parameters(), lr=0.01)
    batch = to_tensors(pad_batch(training_windows(data.train, 10), 10))
    mask = batch["target_seq"] > 0
    for _ in range(150):
        logits = teacher.encode(batch["item_id_list"], batch["item_length"])[mask] @ teacher.item_vectors.T
        loss = torch.nn.functional.cross_entropy(logits / teacher.temperature, batch["target_seq"][mask] - 1)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    teacher.eval()
    assert model_metrics(teacher, _valid(sequences))["hr@10"] > 0.9
    return teacher


def sgd_steps(distiller, student, batch, steps: int = 20, lr: float = 0.5) -> None:
    """Train ``student`` on the distillation loss alone for a few SGD steps."""
    optimiser = torch.optim.SGD(student.parameters(), lr=lr)
    for _ in range(steps):
        loss = distiller(student, batch, None)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def _batch(data, n=32):
    return to_tensors(pad_batch(training_windows(data.train, 10)[:n], 10))


# --- DLLM2Rec ----------------------------------------------------------------------------------------
def test_importance_weights_follow_position_confidence_and_consistency():
    cfg = DistillConfig(top_k=4)
    ranks = torch.arange(4)
    flat = torch.full((1, 4), 0.25)
    none = torch.zeros(1, 4, dtype=torch.bool)
    w = importance_weights(ranks, flat, none, cfg)
    assert torch.allclose(w.sum(-1), torch.ones(1))
    assert torch.all(w[0, :-1] > w[0, 1:])  # earlier positions weigh more
    confident = importance_weights(ranks, torch.tensor([[0.1, 0.1, 0.1, 0.7]]), none, cfg)
    assert confident[0, 3] > w[0, 3]  # the teacher's confidence raises an item's weight
    agree = importance_weights(ranks, flat, torch.tensor([[False, False, True, False]]), cfg)
    assert agree[0, 2] > w[0, 2] and agree[0, 3] < w[0, 3]  # consistency with the student raises it
    only_position = importance_weights(ranks, torch.tensor([[0.1, 0.1, 0.1, 0.7]]), none,
                                       DistillConfig(gamma_confidence=0.0, gamma_consistency=0.0))
    assert torch.allclose(only_position, w.new_tensor(np.exp(-np.arange(4) / 3.0) / np.exp(-np.arange(4) / 3.0).sum()))


def test_history_items_are_masked_per_position():
    seq = torch.tensor([[3, 5, 7, 0]])
    mask = torch.tensor([[True, True, True, False]])
    logits = _mask_history(torch.zeros(3, 8), seq, mask)
    assert torch.isinf(logits[0, 2]) and not torch.isinf(logits[0, 4])  # position 0 saw item 3 only
    assert torch.isinf(logits[1, 4]) and not torch.isinf(logits[1, 6])
    assert torch.isinf(logits[2]).sum() == 3


def test_ranking_distillation_moves_the_student_towards_the_teacher_top_k(cyclic, oracle):
    data, _ = cyclic
    torch.manual_seed(0)
    student = get("sasrec")(data.n_items, hidden_size=16, max_len=10, hidden_dropout=0.0, attn_dropout=0.0)
    distiller = Distiller(oracle, student_dim=16, method="dllm2rec", config=DistillConfig(lambda_emb=0.0))
    batch = _batch(data)
    mask = batch["target_seq"] > 0
    with torch.no_grad():
        t_logits = oracle.encode(batch["item_id_list"], batch["item_length"])[mask] @ oracle.item_vectors.T
        t_top = _mask_history(t_logits, batch["item_id_list"], mask).argmax(-1)

    def top1_logprob():
        with torch.no_grad():
            logits = student.encode(batch["item_id_list"], batch["item_length"])[mask] @ student.item_embeddings().T
            return torch.log_softmax(logits, -1).gather(1, t_top[:, None]).mean()

    before, first = top1_logprob(), float(distiller(student, batch, None).detach())
    sgd_steps(distiller, student, batch)
    assert top1_logprob() > before + 0.5
    assert float(distiller(student, batch, None).detach()) < first
    assert set(distiller.last_terms) == {"rank", "emb"}


def test_embedding_distillation_aligns_student_items_with_the_teacher(cyclic, oracle):
    data, _ = cyclic
    torch.manual_seed(0)
    student = get("gru4rec")(data.n_items, hidden_size=16, max_len=10, dropout=0.0)
    distiller = Distiller(oracle, student_dim=16, method="dllm2rec", config=DistillConfig(lambda_rank=0.0))
    batch = _batch(data)
    optimiser = torch.optim.Adam(list(student.parameters()) + list(distiller.parameters()), lr=0.01)
    values = []
    for _ in range(40):
        loss = distiller(student, batch, None)
        values.append(distiller.last_terms["emb"])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert values[-1] < 0.5 * values[0]
    # the learned projection carries the teacher's similarity structure into the student's space
    items = torch.arange(data.n_items)
    s = torch.nn.functional.normalize(student.item_embeddings()[items], dim=-1)
    p = torch.nn.functional.normalize(distiller.item_projection(oracle.item_vectors[items]), dim=-1)
    assert float((s * p).sum(-1).mean()) > float((s @ p.T).mean()) + 0.2


# --- SLMRec ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_feature_distillation_matches_hidden_states(cyclic, oracle, model):
    data, _ = cyclic
    torch.manual_seed(0)
    kwargs = {"hidden_dropout": 0.0, "attn_dropout": 0.0} if model == "sasrec" else {"dropout": 0.0}
    student = get(model)(data.n_items, hidden_size=16, max_len=10, **kwargs)
    distiller = Distiller(oracle, student_dim=16, method="slmrec")
    batch = _batch(data)
    optimiser = torch.optim.Adam(list(student.parameters()) + list(distiller.parameters()), lr=0.01)
    first = None
    for _ in range(40):
        loss = distiller(student, batch, None)
        first = first or dict(distiller.last_terms)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    last = distiller.last_terms
    assert last["cos"] < 0.5 * first["cos"] and last["l2"] < first["l2"]
    assert last["teacher_space"] < first["teacher_space"]
    # intermediate-layer supervision only where the student has several layers
    assert ("intermediate" in last) == (model == "sasrec")
    if model == "sasrec":
        layers = student_layers(student.eval(), batch["item_id_list"], batch["item_length"])
        assert len(layers) == 2
        assert torch.allclose(layers[-1], student.encode(batch["item_id_list"], batch["item_length"]), atol=1e-5)


def test_method_names_are_checked():
    assert parse_method("slmrec+dllm2rec") == (True, True)
    with pytest.raises(InvalidInputError) as e:
        parse_method("kd")
    assert e.value.field == "method"


# --- through the trainer, and round trips -------------------------------------------------------------
def test_distilled_training_trains_the_projections_and_round_trips(tmp_path, cyclic, oracle):
    data, sequences = cyclic
    distiller = Distiller(oracle, student_dim=32, method="dllm2rec+slmrec")
    before = [p.detach().clone() for p in distiller.parameters()]
    result = train_student(data=data, model="sasrec", model_kwargs={"hidden_size": 32}, epochs=2, max_len=10,
                           holdout_fraction=0.0, extra_loss=distiller, extra_modules=[distiller], seed=0)
    assert all(not torch.equal(a, b) for a, b in zip(before, distiller.parameters()))
    assert not any(k.startswith(("item_projection", "hidden_projection")) for k in result.model.state_dict())
    store = RecommenderStore(root=tmp_path)
    store.save("distilled", result.model, item_ids=data.item_ids, dataset="synthetic",
               train_config={**result.config, "distillation": distiller.describe()})
    loaded = store.load("distilled")
    batch = to_tensors(history_batch([[1, 2, 3], [7]], 10))
    assert torch.equal(result.model.full_sort_predict(batch), loaded.model.full_sort_predict(batch))
    assert loaded.meta.train_config["distillation"]["method"] == "dllm2rec+slmrec"


# --- REKI / KAR ----------------------------------------------------------------------------------------
def test_hybrid_expert_adapter_gates_shared_and_dedicated_experts():
    torch.manual_seed(0)
    adapter = HybridExpertAdapter([3, 5], 4, n_shared=2, n_dedicated=1)
    x = torch.randn(6, 8, requires_grad=True)
    out = adapter(x)
    assert out.shape == (6, 4) and adapter(x.view(2, 3, 8)).shape == (2, 3, 4)
    gate = adapter.gate_weights(x)
    assert gate.shape == (6, 4) and torch.allclose(gate.sum(-1), torch.ones(6))
    # a dedicated expert reads its own source only
    dedicated = adapter.dedicated[0][0](x[:, :3])
    grad = torch.autograd.grad(dedicated.sum(), x)[0]
    assert grad[:, 3:].abs().sum() == 0 and grad[:, :3].abs().sum() > 0
    with pytest.raises(InvalidInputError) as e:
        adapter(torch.randn(2, 7))
    assert e.value.field == "knowledge"


def test_kar_student_trains_the_adapter_and_freezes_into_a_plain_student(tmp_path, cyclic):
    data, sequences = cyclic
    rng = np.random.default_rng(0)
    knowledge = rng.normal(size=(data.n_items, 10)).astype(np.float32)
    result = train_student(data=data, model="gru4rec", knowledge=knowledge, knowledge_spec="kar", epochs=2,
                           max_len=10, holdout_fraction=0.1, prepare=kar_prepare([4, 6]), seed=0)
    assert isinstance(result.model.knowledge_projection, HybridExpertAdapter)
    plain = freeze_kar(result.model)
    assert type(plain) is type(result.model) and plain.knowledge.shape == (data.n_items + 1, plain.hidden_size)
    batch = to_tensors(history_batch([[1, 2, 3], [7], [5, 9]], 10))
    assert torch.allclose(result.model.eval().full_sort_predict(batch), plain.full_sort_predict(batch), atol=1e-5)
    store = RecommenderStore(root=tmp_path)
    store.save("kar", plain, item_ids=data.item_ids, dataset="synthetic", knowledge="kar")
    loaded = store.load("kar").model
    assert torch.equal(plain.full_sort_predict(batch), loaded.full_sort_predict(batch))
    # serving cost: a plain student's parameters, no expert left
    assert not any("experts" in k or "gate" in k or "shared" in k for k in loaded.state_dict())
    with pytest.raises(InvalidInputError) as e:
        train_student(data=data, model="sasrec", epochs=1, max_len=10, prepare=kar_prepare([4]))
    assert e.value.field == "knowledge"
