"""Next-item retrieval from item text embeddings (kg_builder.evaluation.titles): the ranking metrics
on hand-made embeddings, the split handling, the cache, and the four rows on real Scientific (slow)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kg_builder.datasets.records import Dataset, InteractionRecord, ItemRecord
from kg_builder.errors import DatasetError
from kg_builder.evaluation.titles import EmbeddingCache, evaluate_titles, rank_metrics, user_sequences


def tiny_dataset() -> Dataset:
    """Four items, three users; history = train positions, target = valid (the Scientific layout)."""
    items = [ItemRecord(id=str(i), title=t, brand=b) for i, (t, b) in enumerate([
        ("DEWALT DW4524 Grinding Wheel", "DEWALT"),
        ("DEWALT DW8001 Chop Saw Wheel", "DEWALT"),
        ("Gorilla Glue, 8 ounce Bottle", "Gorilla"),
        ("Gorilla Clear Duct Tape (Pack of 2)", "Gorilla"),
    ])]
    seqs = {"u1": ["0", "1"], "u2": ["2", "3"], "u3": ["0", "2", "0"]}
    interactions = [InteractionRecord(user=u, item=item, split="valid" if p == len(s) - 1 else "train", position=p)
                    for u, s in seqs.items() for p, item in enumerate(s)]
    return Dataset(name="tiny", kind="rec", items=items, interactions=interactions)


def test_sequences_follow_positions_and_a_missing_split_is_named():
    seqs = user_sequences(tiny_dataset(), "valid")
    assert seqs.users == ["u1", "u2", "u3"]
    assert seqs.histories == [[0], [2], [0, 2]]
    assert seqs.targets.tolist() == [1, 3, 0]
    with pytest.raises(DatasetError, match="split 'test' has no interactions.*splits on disk: train, valid"):
        user_sequences(tiny_dataset(), "test")


def test_rank_metrics_on_hand_made_embeddings():
    seqs = user_sequences(tiny_dataset(), "valid")
    # items 0/1 are close, items 2/3 are close, the groups are orthogonal
    E = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    got = rank_metrics(E, seqs, k=1)
    # u1: history 0 excluded, target 1 ranks first; u2: target 3 first; u3: target 0 is a history
    # item, so excluded = a miss (this protocol)
    assert got == {"ndcg@1": pytest.approx(2 / 3), "hr@1": pytest.approx(2 / 3)}
    kept = rank_metrics(E, seqs, k=10, exclude_history=False)
    # u1: item 0 (score 1) beats the target (0.9): rank 1 -> 1/log2(3); u2 the same; u3: query =
    # 0.7*e0 + e1 direction [0.7, 1]: items 2 (1.0), 3 (0.97), 1 (0.73) beat target 0 (0.7) -> 1/log2(5)
    assert kept["hr@10"] == 1.0
    assert kept["ndcg@10"] == pytest.approx((2 / math.log2(3) + 1 / math.log2(5)) / 3)


def test_ties_count_against_the_target():
    seqs = user_sequences(tiny_dataset(), "valid")
    E = np.ones((4, 3), dtype=np.float32)  # every item scores the same
    assert rank_metrics(E, seqs, k=1)["hr@1"] == 0.0


def test_four_rows_are_reported_and_embeddings_are_cached(tmp_path):
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:  # a deterministic bag-of-words stand-in for MiniLM
        calls.append(texts)
        vocab = sorted({w for t in texts for w in t.lower().split()})
        M = np.array([[t.lower().split().count(w) for w in vocab] for t in texts], dtype=np.float32)
        return M / np.linalg.norm(M, axis=1, keepdims=True)

    dataset = tiny_dataset()
    first = evaluate_titles(dataset, "valid", encode=encode, model="bow", cache_dir=tmp_path, whitening_dims=2)
    assert [r["row"] for r in first.rows] == ["raw", "raw+whitening", "normalised", "normalised+whitening"]
    assert first.as_dict()["chosen_default"] == first.best["row"]
    assert first.best["ndcg@10"] == max(r["ndcg@10"] for r in first.rows)
    assert len(calls) == 2 and calls[0] != calls[1]  # raw and normalised texts differ
    again = evaluate_titles(dataset, "valid", encode=encode, model="bow", cache_dir=tmp_path, whitening_dims=2)
    assert len(calls) == 2  # nothing re-encoded
    assert again.rows == first.rows
    assert EmbeddingCache(tmp_path).key("bow", ["a"]) != EmbeddingCache(tmp_path).key("other", ["a"])


def test_the_cli_names_a_held_out_split_that_is_absent(data_dir, tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from kgforge.cli.titles import eval_titles_command

    monkeypatch.setenv("KGFORGE_HOME", str(tmp_path))
    app = typer.Typer()
    app.command()(eval_titles_command)
    result = CliRunner().invoke(app, ["--dataset", "amazon18_scientific", "--split", "test",
                                      "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert "split 'test' has no interactions" in result.output


@pytest.mark.slow
def test_four_rows_on_real_scientific(data_dir, tmp_path, one_torch_thread):
    from kg_builder.datasets import load_dataset
    from kg_builder.models.encoder import TextEncoder

    encoder = TextEncoder()
    result = evaluate_titles(load_dataset("amazon18_scientific", data_dir), "valid", encode=encoder.encode,
                             model=str(encoder.path), cache_dir=tmp_path)
    assert result.protocol["users"] == 8442 and result.protocol["items"] == 4385
    rows = {r["row"]: r for r in result.rows}
    # text similarity is far above chance (10/4385 = 0.0023 HR@10 at random)
    assert all(r["hr@10"] > 0.05 for r in rows.values())


def test_test_split_history_includes_the_valid_item_in_time_order():
    from kg_builder.datasets.records import Dataset, InteractionRecord, ItemRecord
    from kg_builder.evaluation.titles import user_sequences

    items = [ItemRecord(id=str(i), title=f"t{i}") for i in range(4)]
    records = [InteractionRecord(user="u", item="3", split="train", timestamp=10),
               InteractionRecord(user="u", item="1", split="train", timestamp=20),
               InteractionRecord(user="u", item="0", split="valid", timestamp=30),
               InteractionRecord(user="u", item="2", split="test", timestamp=40)]
    dataset = Dataset(name="toy", kind="rec", items=items, interactions=records)
    assert user_sequences(dataset, "valid").histories == [[3, 1]]
    test = user_sequences(dataset, "test")
    assert test.histories == [[3, 1, 0]] and test.targets.tolist() == [2]
