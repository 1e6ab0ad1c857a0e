"""The students' graph-score term (recommender/graph_score.py, SequentialRecommender(graph_scores=...)):
the graph embedding set's own decayed-history score joins the student's logits with one learned weight,
on every path (training loss, full ranking, predict, distillation, saving, serving)."""

import numpy as np
import pytest
import torch

from gnn.store import EmbeddingSet, EmbeddingStore
from kg_builder.errors import InvalidInputError
from kg_builder.evaluation.titles import rank_metrics
from kg_builder.settings import Settings
from recommender.data import history_batch, pad_batch, training_windows
from recommender.distill import Distiller
from recommender.evaluate import saved_name
from recommender.graph_score import GRAPH_SCORE_WEIGHT, GRAPH_TEMPERATURE, decayed_last_queries, decayed_prefix_queries
from recommender.knowledge import build_graph_scores, build_knowledge, build_knowledge_blocks, parse_spec
from recommender.metrics import model_metrics
from recommender.models import get
from recommender.models.base import to_tensors, with_graph_score
from recommender.serving import ServedModel
from recommender.store import RecommenderStore
from recommender.train import train_student

from .test_distill import _valid, oracle  # noqa: F401  (oracle: the trained text-teacher fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _graph(n_items: int, dim: int = 8, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n_items, dim)).astype(np.float32)


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_every_scoring_path_adds_the_weighted_graph_score(cyclic, name):
    data, _ = cyclic
    graph = _graph(data.n_items)
    torch.manual_seed(0)
    plain = get(name)(data.n_items, hidden_size=16, max_len=10).eval()
    torch.manual_seed(0)
    model = get(name)(data.n_items, hidden_size=16, max_len=10, graph_scores=torch.from_numpy(graph)).eval()
    with torch.no_grad():
        model.graph_score_weight.fill_(0.5)
    # the graph term takes no random draw: the same seed gives the same network
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), model.parameters()))
    batch = to_tensors(history_batch([[1, 2, 3], [7], list(range(1, 15))], 10))
    batch["item_id"] = torch.tensor([5, 9, 2])
    seq, lengths = batch["item_id_list"], batch["item_length"]
    table = torch.nn.functional.normalize(torch.from_numpy(graph), dim=-1)
    queries = decayed_prefix_queries(seq, table)[torch.arange(3), lengths - 1]
    assert torch.allclose(decayed_last_queries(seq, lengths, table), queries, atol=1e-6)
    expected = plain.full_sort_predict(batch) + 0.5 * (queries @ table.T) / GRAPH_TEMPERATURE
    with torch.no_grad():
        scores = model.full_sort_predict(batch)
        assert torch.allclose(scores, expected, atol=1e-5)
        assert torch.allclose(model.predict(batch), scores[torch.arange(3), batch["item_id"] - 1], atol=1e-5)
        train_batch = to_tensors(pad_batch(training_windows(data.train, 10)[:16], 10))
        mask = train_batch["target_seq"] > 0
        logits = (model.encode(train_batch["item_id_list"], train_batch["item_length"])[mask]
                  @ model.item_embeddings().T + model.graph_score_logits(train_batch["item_id_list"], mask))
        reference = torch.nn.functional.cross_entropy(logits, train_batch["target_seq"][mask] - 1)
        assert torch.allclose(model.calculate_loss(train_batch), reference, atol=1e-5)
        assert not torch.allclose(model.calculate_loss(train_batch), plain.calculate_loss(train_batch))


def test_with_a_silent_network_it_ranks_as_the_sets_own_scorer(cyclic):
    """The student's own part set to 0: its ranking is the embedding set's evaluation scorer exactly."""
    data, sequences = cyclic
    graph = _graph(data.n_items)
    model = get("sasrec")(data.n_items, hidden_size=16, max_len=10, graph_scores=torch.from_numpy(graph)).eval()
    with torch.no_grad():
        model.item_embedding.weight.zero_()
    valid = _valid(sequences)
    ours = model_metrics(model, valid, ks=(10,))
    reference = rank_metrics(graph / np.linalg.norm(graph, axis=1, keepdims=True), valid, k=10)
    assert ours["ndcg@10"] == pytest.approx(reference["ndcg@10"], abs=1e-6)
    assert 0.0 < ours["hr@10"] < 1.0


def test_the_network_trains_without_the_term_which_is_added_after_and_saved_and_served(tmp_path, cyclic):
    """Late fusion: the network trained with graph scores is exactly the plain student trained alike
    (the term's weight is 0 during training, early stopping included); the result carries the
    chosen weight (``GRAPH_SCORE_WEIGHT``)."""
    data, _ = cyclic
    graph = _graph(data.n_items)
    kwargs = dict(data=data, model="sasrec", knowledge=None, seed=0, epochs=2, holdout_fraction=0.1, max_len=10)
    result = train_student(knowledge_spec="graph-score:g", graph_scores=graph, **kwargs)
    plain = train_student(knowledge_spec="none", **kwargs)
    assert result.config["graph_score_dim"] == 8 and "late fusion" in result.config["graph_score"]
    assert float(result.model.graph_score_weight) == GRAPH_SCORE_WEIGHT
    assert all(torch.equal(a, b) for a, b in zip(result.model.parameters(), plain.model.parameters()))
    assert [h["holdout_ndcg@10"] for h in result.history] == [h["holdout_ndcg@10"] for h in plain.history]
    with torch.no_grad():
        probe = to_tensors(history_batch([[1, 2, 3]], 10))
        assert not torch.allclose(result.model.full_sort_predict(probe), plain.model.full_sort_predict(probe))
        # so the plain student plus the term is that student, without training again
        fused = with_graph_score(plain.model, torch.from_numpy(graph))
        assert torch.equal(fused.full_sort_predict(probe), result.model.full_sort_predict(probe))
    with pytest.raises(InvalidInputError, match="already has"):
        with_graph_score(fused, torch.from_numpy(graph))
    store = RecommenderStore(root=tmp_path)
    store.save("gs", result.model, item_ids=data.item_ids, dataset="synthetic", knowledge="graph-score:g")
    loaded = store.load("gs")
    batch = to_tensors(history_batch([[1, 2, 3], [7], list(range(12))], 10))
    with torch.no_grad():
        assert torch.equal(result.model.eval().full_sort_predict(batch), loaded.model.full_sort_predict(batch))
        served = ServedModel(loaded)
        history = [data.item_ids[i] for i in (4, 5, 6)]
        expected = loaded.model.full_sort_predict(to_tensors(history_batch([[4, 5, 6]], 10)))[0]
        assert torch.allclose(served.scores([4, 5, 6]), expected, atol=1e-5)
        items, _ = served.top_k(history, k=5)
        assert items == [data.item_ids[i] for i in torch.topk(expected.index_fill(0, torch.tensor([4, 5, 6]),
                                                                                   float("-inf")), 5).indices]


def test_ranking_distillation_reads_the_students_graph_score_when_it_is_on(cyclic, oracle):  # noqa: F811
    data, _ = cyclic
    torch.manual_seed(0)
    student = get("sasrec")(data.n_items, hidden_size=16, max_len=10,
                            graph_scores=torch.from_numpy(_graph(data.n_items)))
    torch.manual_seed(0)
    plain = get("sasrec")(data.n_items, hidden_size=16, max_len=10)
    batch = to_tensors(pad_batch(training_windows(data.train, 10)[:32], 10))
    losses = {}
    for weight in (0.0, 1.0):
        student.graph_score_weight.fill_(weight)
        torch.manual_seed(1)
        distiller = Distiller(oracle, student_dim=16, method="dllm2rec")
        losses[weight] = distiller(student, batch, None)
        assert torch.isfinite(losses[weight])
    torch.manual_seed(1)
    reference = Distiller(oracle, student_dim=16, method="dllm2rec")(plain, batch, None)
    assert torch.equal(losses[0.0], reference)  # off (as in training): exactly the plain student's terms
    assert not torch.allclose(losses[1.0], reference)


def test_specs_and_bad_inputs_name_the_field(tmp_path, cyclic):
    data, _ = cyclic
    assert parse_spec("text+graph-score:s@2") == ["text", "graph-score:s@2"]
    for bad in ("graph-score:", "graph-score:a+graph-score:b"):
        with pytest.raises(InvalidInputError) as e:
            parse_spec(bad)
        assert e.value.field == "knowledge"
    settings = Settings(home=tmp_path)
    ids = [f"synthetic:item:{i}" for i in data.item_ids]
    vectors = _graph(data.n_items, dim=4)
    EmbeddingStore(settings).save(EmbeddingSet.create("set", vectors, ids, model="lightgcn", domain="synthetic"))
    assert np.allclose(build_graph_scores("text+graph-score:set", data, settings=settings), vectors, atol=1e-6)
    assert build_graph_scores("graph:set", data, settings=settings) is None
    assert build_knowledge("graph-score:set", data, settings=settings) is None  # not a supplement block
    assert len(build_knowledge_blocks("graph:set+graph-score:set", data, settings=settings)) == 1
    with pytest.raises(InvalidInputError, match="graph_scores"):
        get("sasrec")(data.n_items, graph_scores=torch.zeros(data.n_items - 1, 4))
    broken = torch.from_numpy(vectors.copy())
    broken[2, 1] = float("nan")
    with pytest.raises(InvalidInputError, match="graph_scores"):
        get("gru4rec")(data.n_items, graph_scores=broken)
    name = saved_name("sasrec", "text+graph:gnn-amazon18_scientific+graph-score:gnn-amazon18_scientific",
                      "amazon18_scientific", 0)
    assert name == "sasrec-text_graph_gnn-amazon18_scientific_gscore-amazon18_scientific-s0" and len(name) <= 100
    assert saved_name("sasrec", "graph-score:other", "d", 1) == "sasrec-graph-score_other-d-s1"
