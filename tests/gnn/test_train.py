"""gnn.models / gnn.sampling / gnn.train on tiny hand-built graphs: every registered model runs
forward and backward, batches stay bounded, training learns, a NaN loss stops and saves nothing,
fine-tuning copies the shared weights, and models round-trip through their folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gnn_toy import clustered_dataset

from gnn.export import INTERACTS, concat_graphs, export_dataset, reverse
from gnn.models import MODELS, GraphEncoder, build_model
from gnn.sampling import LinkBatchSampler, full_batch
from gnn.train import TrainingDivergedError, finetune, item_embeddings, pretrain
from kg_builder.datasets.records import Dataset, InteractionRecord, ItemRecord
from kg_builder.errors import InvalidInputError


def toy_graph(name: str = "toy", seed: int = 0, domain: int = 0):
    dataset = clustered_dataset(name, seed=seed)
    features = np.random.default_rng(seed).normal(size=(len(dataset.items), 8)).astype(np.float32)
    return export_dataset(dataset, features=features, domain=domain)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_model_runs_forward_and_backward(name, one_torch_thread):
    data = toy_graph()
    model = build_model(name, num_nodes={nt: data[nt].num_nodes for nt in data.node_types}, text_dim=8, dim=16)
    sampler = LinkBatchSampler(data, num_neighbors=(3, 2), batch_size=16, seed=0)
    batch = next(iter(sampler))
    h = model(batch)
    assert h["item"].shape == (batch["item"].num_nodes, 16)
    assert h["user"].shape == (batch["user"].num_nodes, 16)
    loss = (h["user"][batch.pos_user] * h["item"][batch.pos_item]).sum()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert model.text_proj.weight.grad is not None and model.text_proj.weight.grad.abs().sum() > 0
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    full = model(full_batch(data))
    assert full["item"].shape == (40, 16) and torch.isfinite(full["item"]).all()


def test_unknown_model_lists_the_choices():
    with pytest.raises(InvalidInputError) as error:
        build_model("gat", num_nodes={})
    assert "hetero_sage" in str(error.value) and "lightgcn" in str(error.value)


def test_sampler_batches_are_bounded_and_hide_their_own_edges():
    data = toy_graph()
    sampler = LinkBatchSampler(data, num_neighbors=(2, 2), batch_size=8, num_negatives=2, seed=1)
    assert len(sampler) == -(-data[INTERACTS].edge_index.shape[1] // 8)
    seen = 0
    for batch in sampler:
        nodes = sum(batch[nt].num_nodes for nt in batch.node_types)
        assert nodes <= sampler.max_nodes()
        assert batch.pos_user.shape == (batch.pos_user.numel(),) and batch.pos_user.numel() <= 8
        assert batch.neg_item.shape == (batch.pos_user.numel(), 2)
        users = batch["user"].n_id[batch.pos_user]
        items = batch["item"].n_id[batch.pos_item]
        used = {(int(batch["user"].n_id[u]), int(batch["item"].n_id[i]))
                for u, i in batch[INTERACTS].edge_index.t().tolist()}
        assert not used & set(zip(users.tolist(), items.tolist()))  # the answer is not a message edge
        negatives = batch["item"].n_id[batch.neg_item]
        assert ((negatives >= 0) & (negatives < 40)).all()
        seen += batch.pos_user.numel()
    assert seen == data[INTERACTS].edge_index.shape[1]


def test_sampler_memory_does_not_grow_with_the_graph():
    small = toy_graph()
    big = concat_graphs([toy_graph(f"d{k}", seed=k, domain=k) for k in range(30)])
    sizes = []
    for data in (small, big):
        sampler = LinkBatchSampler(data, num_neighbors=(2, 2), batch_size=8, seed=0)
        sizes.append(max(sum(b[nt].num_nodes for nt in b.node_types) for b in sampler))
    assert sizes[1] <= LinkBatchSampler(big, num_neighbors=(2, 2), batch_size=8).max_nodes()
    assert sizes[1] < sum(big[nt].num_nodes for nt in big.node_types) / 4


def test_negatives_stay_in_the_positive_items_domain():
    data = concat_graphs([toy_graph("a", domain=0), toy_graph("b", seed=1, domain=1)])
    sampler = LinkBatchSampler(data, batch_size=32, num_negatives=4, seed=0)
    domain = data["item"].domain
    for batch in sampler:
        pos = batch["item"].n_id[batch.pos_item]
        neg = batch["item"].n_id[batch.neg_item]
        assert torch.equal(domain[neg], domain[pos][:, None].expand_as(neg))


def test_pretraining_learns_the_taste_groups(one_torch_thread, tmp_path):
    data = toy_graph()
    progress = []
    result = pretrain(data, "hetero_sage", objective="link", epochs=15, seed=0, dim=16, batch_size=32,
                      num_neighbors=(4, 2), progress=progress.append, output_dir=tmp_path / "model")
    assert result.metrics["edges_per_s"] > 0 and result.metrics["peak_rss_mib"] > 0
    assert progress and progress[-1]["stage"] == "pretrain"
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    emb = item_embeddings(result.model, data)
    group = np.arange(40) >= 20
    sims = emb @ emb.T
    same = sims[np.equal.outer(group, group)].mean()
    other = sims[~np.equal.outer(group, group)].mean()
    assert same > other  # items bought by the same users end up closer
    loaded = GraphEncoder.load(tmp_path / "model")
    assert np.allclose(item_embeddings(loaded, data), emb, atol=1e-6)
    assert (tmp_path / "model" / "training.json").exists()


def test_nan_loss_stops_training_and_saves_nothing(tmp_path):
    """An absurd learning rate blows the weights up after the first step: the loss turns inf/NaN."""
    data = toy_graph()
    with pytest.raises(TrainingDivergedError, match="nothing was saved"):
        pretrain(data, "rgcn", objective="link", epochs=3, dim=8, batch_size=16, lr=1e30, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_nan_features_stop_training(tmp_path):
    data = toy_graph()
    data["item"].x[0, 0] = float("nan")
    with pytest.raises(TrainingDivergedError):
        pretrain(data, "lightgcn", epochs=2, dim=8, batch_size=500, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_budget_is_required():
    with pytest.raises(InvalidInputError) as error:
        pretrain(toy_graph(), "lightgcn")
    assert error.value.field == "epochs"


def test_finetune_copies_shared_weights_and_makes_new_id_embeddings():
    source = concat_graphs([toy_graph("a"), toy_graph("b", seed=1, domain=1)])
    target = toy_graph("t", seed=2)
    base = pretrain(source, "hetero_sage", objective="link", max_batches=2, dim=8, batch_size=32)
    tuned = finetune(base, target, max_batches=1, lr=0.0)  # lr 0: weights stay as initialised
    assert torch.equal(tuned.model.text_proj.weight, base.model.text_proj.weight)
    assert tuned.model.id_emb["user"].num_embeddings == target["user"].num_nodes
    assert base.model.id_emb["user"].num_embeddings == source["user"].num_nodes
    assert tuned.config["stage"] == "finetune"
    other = build_model("rgcn", num_nodes={}, text_dim=8, dim=8)
    with pytest.raises(InvalidInputError):
        other.load_shared(base.model.shared_state_dict())


def test_shared_lr_scale_zero_freezes_the_transferred_weights_and_not_the_id_embeddings():
    source = concat_graphs([toy_graph("a"), toy_graph("b", seed=1, domain=1)])
    target = toy_graph("t", seed=2)
    base = pretrain(source, "lightgcn", max_batches=2, dim=8, batch_size=32)
    frozen = finetune(base, target, max_batches=3, lr=0.05, batch_size=32, shared_lr_scale=0.0)
    assert torch.equal(frozen.model.text_proj.weight, base.model.text_proj.weight)
    start = finetune(base, target, max_batches=1, lr=0.0, batch_size=32).model  # the same seed's initial IDs
    assert not torch.equal(frozen.model.id_emb["item"].weight, start.id_emb["item"].weight)
    moving = finetune(base, target, max_batches=3, lr=0.05, batch_size=32, shared_lr_scale=0.1)
    assert not torch.equal(moving.model.text_proj.weight, base.model.text_proj.weight)
    assert frozen.config["shared_lr_scale"] == 0.0 and moving.config["shared_lr_scale"] == 0.1
    with pytest.raises(InvalidInputError) as error:
        finetune(base, target, max_batches=1, shared_lr_scale=2.0)
    assert error.value.field == "shared_lr_scale"


def test_reverse_edge_types_are_message_edges():
    data = toy_graph()
    sampler = LinkBatchSampler(data, batch_size=8, seed=0)
    batch = next(iter(sampler))
    assert batch[reverse(INTERACTS)].edge_index.shape[1] > 0


def test_popularity_row_ranks_by_train_counts():
    from gnn.evaluate import popularity_embeddings
    from kg_builder.evaluation.titles import rank_metrics, user_sequences

    dataset = clustered_dataset()
    sequences = user_sequences(dataset, "valid")
    pop = popularity_embeddings(dataset)
    counts = np.bincount([int(r.item) for r in dataset.interactions if r.split == "train"], minlength=40)
    assert np.array_equal(np.argsort(-pop[:, 0], kind="stable"), np.argsort(-counts, kind="stable"))
    metrics = rank_metrics(pop, sequences)
    assert 0.0 <= metrics["ndcg@10"] <= metrics["hr@10"] <= 1.0
    shuffled = rank_metrics(np.random.default_rng(0).random((40, 1)).astype(np.float32), sequences)
    assert metrics != shuffled


def test_text_projection_starts_as_whitening():
    from kg_builder.products.titles import Whitening

    features = torch.from_numpy(np.random.default_rng(3).normal(size=(50, 12)).astype(np.float32))
    model = build_model("lightgcn", num_nodes={"item": 50}, text_dim=12, dim=4)
    model.init_text_projection(features)
    projected = model.text_proj(features).detach().numpy()
    whitening = Whitening(4).fit(features.numpy())
    expected = (features.numpy() - whitening.mu) @ whitening.W / 2.0  # scaled by 1/sqrt(dim)
    assert np.allclose(projected, expected, atol=1e-4)
    cov = np.cov(projected.T) * 4
    assert np.allclose(cov, np.eye(4), atol=1e-3)  # decorrelated, unit variance before the scaling


def sequential_dataset(name: str = "seq", *, users: int = 80, items: int = 30, seed: int = 0) -> Dataset:
    """Every user walks a cycle of the items (i -> i + 1 mod items) from a random start: the next
    item is always the successor of the last one, which only a sequence-aware objective can learn
    (titles are random, so text alone says nothing)."""
    rng = np.random.default_rng(seed)
    item_records = [ItemRecord(id=str(i), title=f"item {i}") for i in range(items)]
    interactions = []
    for u in range(users):
        start = int(rng.integers(items))
        for pos in range(6):
            interactions.append(InteractionRecord(user=f"u{u}", item=str((start + pos) % items),
                                                  split="valid" if pos == 5 else "train", position=pos))
    return Dataset(name=name, kind="rec", items=item_records, interactions=interactions)


def test_export_builds_next_item_pairs_from_train_sequences_only():
    dataset = sequential_dataset(users=3)
    data = export_dataset(dataset, features=np.zeros((30, 4), dtype=np.float32))
    assert data.seq_prefix.shape == (3 * 4, 10) and data.seq_target.shape == (12,)
    # each target is the successor of the newest prefix item; valid items are never targets
    assert torch.equal(data.seq_target, (data.seq_prefix[:, -1] + 1) % 30)
    both = concat_graphs([data, export_dataset(dataset, features=np.zeros((30, 4), dtype=np.float32), domain=1)])
    assert both.seq_target[12:].min() >= 30 and (both.seq_prefix[12:][both.seq_prefix[12:] >= 0] >= 30).all()


def test_next_item_objective_learns_the_successor_and_keeps_the_best_validated_state(one_torch_thread):
    from gnn.train import holdout_validator
    from kg_builder.evaluation.titles import rank_metrics, user_sequences

    dataset = sequential_dataset()
    features = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    data = export_dataset(dataset, features=features)
    sequences = user_sequences(dataset, "valid")
    scores: list[float] = []

    def validate(model):  # the valid split itself, to see the curve (a real run uses a train-only holdout)
        scores.append(holdout_validator(data, sequences)(model))
        return scores[-1]

    before = rank_metrics(item_embeddings(build_model("lightgcn", num_nodes={nt: data[nt].num_nodes
                                                                             for nt in data.node_types},
                                                      text_dim=8, dim=16), data), sequences)["ndcg@10"]
    result = finetune(None, data, model_name="lightgcn", dim=16, max_batches=120, batch_size=64, lr=0.01,
                      validate=validate, eval_every=10, patience=None)
    after = holdout_validator(data, sequences)(result.model)
    assert after > 0.8 > before + 0.3  # the successor is ranked first for most users
    assert result.metrics["best_validation_ndcg@10"] == pytest.approx(max(scores), abs=1e-5)
    assert after == pytest.approx(max(scores), abs=1e-5)  # the best state is the one kept
    assert result.history[0]["batch"] == 0 and result.config["objective"] == "next_item"


def test_next_item_objective_needs_pairs_and_a_known_objective():
    data = toy_graph()
    data.seq_target = torch.zeros(0, dtype=torch.long)
    with pytest.raises(InvalidInputError) as error:
        pretrain(data, "lightgcn", max_batches=1)
    assert error.value.field == "data"
    with pytest.raises(InvalidInputError) as error:
        pretrain(toy_graph(), "lightgcn", objective="contrastive", max_batches=1)
    assert error.value.field == "objective"


def test_text_tower_starts_at_the_linear_input_and_transfers(tmp_path):
    data = toy_graph()
    num_nodes = {nt: data[nt].num_nodes for nt in data.node_types}
    torch.manual_seed(0)
    plain = build_model("lightgcn", num_nodes=num_nodes, text_dim=8, dim=16)
    torch.manual_seed(0)
    tower = build_model("lightgcn", num_nodes=num_nodes, text_dim=8, dim=16, text_hidden=32)
    tower.text_proj.load_state_dict(plain.text_proj.state_dict())
    for nt in plain.id_emb:
        tower.id_emb[nt].load_state_dict(plain.id_emb[nt].state_dict())
    batch = full_batch(data)
    assert torch.allclose(tower(batch)["item"], plain(batch)["item"])  # the tower's output layer starts at 0
    base = pretrain(data, "lightgcn", objective="link", max_batches=3, dim=16, text_hidden=32, batch_size=16)
    assert base.model.text_mlp[2].weight.abs().sum() > 0  # and trains
    loaded = GraphEncoder.load(base.model.save(tmp_path / "m"))
    assert loaded.text_hidden == 32 and torch.equal(loaded.text_mlp[2].weight, base.model.text_mlp[2].weight)
    tuned = finetune(loaded, toy_graph("t", seed=2), max_batches=1, lr=0.0)
    assert tuned.config["text_hidden"] == 32 and torch.equal(tuned.model.text_mlp[0].weight, loaded.text_mlp[0].weight)
    with pytest.raises(InvalidInputError, match="text_hidden"):
        build_model("lightgcn", num_nodes=num_nodes, text_dim=8, dim=16, text_hidden=-1)
