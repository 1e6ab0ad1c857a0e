import numpy as np

from kg_builder.evaluation.titles import DECAY, HISTORY_WINDOW, Sequences, rank_metrics
from recommender.metrics import rank_scores


def test_score_ranking_matches_the_title_protocol_on_an_embedding_scorer():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(50, 8)).astype(np.float32)
    histories = [rng.choice(50, size=rng.integers(1, 15), replace=False).tolist() for _ in range(200)]
    targets = rng.integers(0, 50, size=200)  # some targets fall inside the history: misses
    seqs = Sequences(users=[str(i) for i in range(200)], histories=histories, targets=targets)
    queries = np.stack([(DECAY ** np.arange(len(h[-HISTORY_WINDOW:]) - 1, -1, -1)) @ E[h[-HISTORY_WINDOW:]]
                        for h in histories]).astype(np.float32)
    ours = rank_scores(queries @ E.T, seqs, ks=(10, 20))
    for k in (10, 20):
        theirs = rank_metrics(E, seqs, k=k)
        assert abs(ours[f"ndcg@{k}"] - theirs[f"ndcg@{k}"]) < 1e-6
        assert ours[f"hr@{k}"] == theirs[f"hr@{k}"]


def test_ties_count_against_and_history_is_excluded():
    seqs = Sequences(users=["a", "b"], histories=[[0], [1]], targets=np.array([1, 1]))
    scores = np.array([[9.0, 1.0, 1.0, 0.0], [0.0, 5.0, 0.0, 0.0]], dtype=np.float32)
    m = rank_scores(scores, seqs, ks=(1, 2))
    # a: item 0 is history (excluded), target ties with item 2 -> rank 1; b: target in history -> miss
    assert m["hr@1"] == 0.0 and m["hr@2"] == 0.5
    assert abs(m["ndcg@2"] - 0.5 / np.log2(3)) < 1e-9
