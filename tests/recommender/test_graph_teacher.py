"""The text + graph teacher (recommender/teachers/graph_teacher.py): its graph score is the embedding
set's own evaluation scorer, its two paths (evaluation, distillation) agree, and DLLM2Rec distils
its fused top-k."""

import numpy as np
import pytest
import torch

from kg_builder.errors import InvalidInputError
from kg_builder.evaluation.titles import rank_metrics
from recommender.data import history_batch, pad_batch, training_windows
from recommender.distill import DistillConfig, Distiller, _mask_history
from recommender.metrics import model_metrics
from recommender.models import get
from recommender.models.base import to_tensors
from recommender.teachers.graph_teacher import GraphFusedTeacher, decayed_prefix_queries
from recommender.teachers.text_teacher import TextTeacher

from .test_distill import _valid, oracle, sgd_steps  # noqa: F401  (oracle: the trained text-teacher fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _graph(n_items: int, dim: int = 8, seed: int = 1) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n_items, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_graph_score_is_the_embedding_sets_own_scorer(cyclic):
    """With a text teacher that scores every item 0, the fused teacher ranks exactly as
    kg_builder.evaluation.titles.rank_metrics ranks the graph set (decayed mean of the last 10)."""
    data, sequences = cyclic
    text = TextTeacher(data.n_items, dim=16, max_len=10, dropout=0.0).eval()  # item vectors all 0
    graph = _graph(data.n_items)
    fused = GraphFusedTeacher(text, graph)
    valid = _valid(sequences)
    ours = model_metrics(fused, valid, ks=(10,))
    reference = rank_metrics(graph, valid, k=10)
    assert ours["ndcg@10"] == pytest.approx(reference["ndcg@10"], abs=1e-6)
    assert ours["hr@10"] == pytest.approx(reference["hr@10"], abs=1e-6)
    assert 0.0 < ours["hr@10"] < 1.0  # random vectors: neither trivially all nor none


def test_decayed_queries_weigh_the_last_ten_items():
    table = torch.eye(12)
    seq = torch.arange(1, 13).unsqueeze(0)  # items 0..11 in order
    queries = decayed_prefix_queries(seq, table)
    last = queries[0, -1]
    expected = torch.tensor([0.0, 0.0] + [0.7 ** (9 - j) for j in range(10)])
    assert torch.allclose(last, expected / expected.norm(), atol=1e-6)
    assert torch.allclose(queries[0, 0], torch.eye(12)[0])  # the first position sees only itself


def test_distillation_path_agrees_with_the_evaluation_path(cyclic, oracle):  # noqa: F811
    data, _ = cyclic
    fused = GraphFusedTeacher(oracle, _graph(data.n_items), graph_weight=0.5)
    histories = [[1, 2, 3], [7], [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]]
    batch = to_tensors(history_batch(histories, 10))
    seq, lengths = batch["item_id_list"], batch["item_length"]
    mask = torch.zeros_like(seq, dtype=torch.bool)
    mask[torch.arange(len(lengths)), lengths - 1] = True
    with torch.no_grad():
        states = fused.encode(seq, lengths)[mask]
        assert torch.allclose(fused.position_logits(seq, lengths, mask, states), fused.full_sort_predict(batch),
                              atol=1e-5)
        plain = GraphFusedTeacher(oracle, _graph(data.n_items), graph_weight=0.0)
        assert torch.equal(plain.full_sort_predict(batch), oracle.full_sort_predict(batch))


def test_ranking_distillation_reads_the_fused_top_k(cyclic, oracle):  # noqa: F811
    data, _ = cyclic
    fused = GraphFusedTeacher(oracle, _graph(data.n_items), graph_weight=5.0)
    batch = to_tensors(pad_batch(training_windows(data.train, 10)[:32], 10))
    seq, lengths = batch["item_id_list"], batch["item_length"]
    mask = batch["target_seq"] > 0
    with torch.no_grad():
        states = oracle.encode(seq, lengths)[mask]
        fused_top = _mask_history(fused.position_logits(seq, lengths, mask, states), seq, mask).argmax(-1)
        text_top = _mask_history(oracle.position_logits(seq, lengths, mask, states), seq, mask).argmax(-1)
    assert (fused_top != text_top).float().mean() > 0.5  # the graph changes what is distilled
    torch.manual_seed(0)
    student = get("sasrec")(data.n_items, hidden_size=16, max_len=10, hidden_dropout=0.0, attn_dropout=0.0)
    distiller = Distiller(fused, student_dim=16, method="dllm2rec", config=DistillConfig(lambda_emb=0.0))

    def logprob(top):
        with torch.no_grad():
            logits = student.encode(seq, lengths)[mask] @ student.item_embeddings().T
            return float(torch.log_softmax(logits, -1).gather(1, top[:, None]).mean())

    before = logprob(fused_top)
    sgd_steps(distiller, student, batch)
    assert logprob(fused_top) > before + 0.5
    described = distiller.describe()
    assert described["teacher"] == "text+graph teacher" and described["graph_weight"] == 5.0


def test_bad_graph_inputs_name_the_field(cyclic, oracle):  # noqa: F811
    data, _ = cyclic
    with pytest.raises(InvalidInputError, match="graph_vectors"):
        GraphFusedTeacher(oracle, _graph(data.n_items - 1))
    broken = _graph(data.n_items)
    broken[3, 0] = np.nan
    with pytest.raises(InvalidInputError, match="graph_vectors"):
        GraphFusedTeacher(oracle, broken)
    with pytest.raises(InvalidInputError, match="graph_weight"):
        GraphFusedTeacher(oracle, _graph(data.n_items), graph_weight=-1.0)


def test_built_from_a_saved_set_records_its_version(tmp_path, cyclic, oracle):  # noqa: F811
    from gnn.store import EmbeddingSet, EmbeddingSetNotFoundError, EmbeddingStore
    from kg_builder.settings import Settings
    from recommender.teachers.graph_teacher import load_graph_teacher

    data, _ = cyclic
    settings = Settings(home=tmp_path)
    ids = [f"synthetic:item:{i}" for i in data.item_ids]
    store = EmbeddingStore(settings)
    for seed in (1, 2):  # two versions: the latest is read and named
        store.save(EmbeddingSet.create("graphset", _graph(data.n_items, seed=seed), ids, model="lightgcn"))
    fused = load_graph_teacher(oracle, "text-teacher v1", "graphset", data, settings=settings)
    assert fused.describe()["graph_set"] == "graphset@2"
    assert torch.allclose(fused.graph_vectors, torch.from_numpy(_graph(data.n_items, seed=2)), atol=1e-6)
    assert load_graph_teacher(oracle, "t", "graphset@1", data, settings=settings).describe()["graph_set"] == "graphset@1"
    with pytest.raises(EmbeddingSetNotFoundError):
        load_graph_teacher(oracle, "t", "nothing", data, settings=settings)
