"""The data pipeline on a tiny RecBole folder written by the test, and the CLI end to end on it."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kg_builder.errors import DatasetError
from recommender.data import holdout_split, load_rec_data, pad_batch, training_windows

N_ITEMS, N_USERS = 300, 60


def write_scientific(root: Path, *, with_test: bool, windowed_user: bool = True) -> Path:
    """``root/rec/amazon18_scientific`` with the atomic files (sequences walk a cycle of items)."""
    folder = root / "rec" / "amazon18_scientific"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    asins = [f"B{i:09d}" for i in range(N_ITEMS)]
    (folder / "Scientific.item2index").write_text("".join(f"{a}\t{i}\n" for i, a in enumerate(asins)))
    (folder / "Scientific.user2index").write_text("".join(f"U{u}\t{u}\n" for u in range(N_USERS)))
    (folder / "Scientific.text").write_text("item_id:token\ttext:token_seq\n" + "".join(
        f"{a}\tWidget number {i} of kind {i % 7}. Industrial & Scientific Lab. Brand{i % 5}. \n"
        for i, a in enumerate(asins)))
    train_rows, valid_rows, test_rows = [], [], []
    for u in range(N_USERS):
        length = 60 if (windowed_user and u == 0) else int(rng.integers(4, 9))
        start = int(rng.integers(N_ITEMS))
        seq = [str((start + j) % N_ITEMS) for j in range(length + 2)]  # + valid + test
        train, valid, test = seq[:length], seq[length], seq[length + 1]
        for end in range(len(train) - 1, 0, -1):  # RecBole: longest row first, lists cut to 50
            train_rows.append(f"{u}\t{' '.join(train[max(0, end - 50):end])}\t{train[end]}\n")
        valid_rows.append(f"{u}\t{' '.join(train[-50:])}\t{valid}\n")
        test_rows.append(f"{u}\t{' '.join((train + [valid])[-50:])}\t{test}\n")
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    (folder / "Scientific.train.inter").write_text(header + "".join(train_rows))
    (folder / "Scientific.valid.inter").write_text(header + "".join(valid_rows))
    if with_test:
        (folder / "Scientific.test.inter").write_text(header + "".join(test_rows))
    return root


def test_train_rows_fold_into_one_sequence_per_user(tmp_path):
    root = write_scientific(tmp_path, with_test=False)
    data = load_rec_data("amazon18_scientific", root)
    assert len(data.train) == N_USERS and data.n_items == N_ITEMS
    assert len(data.train["0"]) == 60  # the windowed user: rows cut to 50 still fold into all 60 items
    assert data.train["0"] == [(data.train["0"][0] + j) % N_ITEMS for j in range(60)]
    valid = data.evaluation("valid")
    for user, history, target in zip(valid.users, valid.histories, valid.targets):
        assert data.train[user][-len(history):] == history
        assert target == (data.train[user][-1] + 1) % N_ITEMS  # the valid item is never trained on
    windows = training_windows(data.train, max_len=50)
    assert sum(len(w) - 1 for w in windows) == sum(len(s) - 1 for s in data.train.values())
    with pytest.raises(DatasetError, match="held out"):
        data.evaluation("test")


def test_test_split_is_history_plus_valid(tmp_path):
    data = load_rec_data("amazon18_scientific", write_scientific(tmp_path, with_test=True))
    valid, test = data.evaluation("valid"), data.evaluation("test")
    by_user = dict(zip(valid.users, zip(valid.histories, valid.targets)))
    for user, history, target in zip(test.users, test.histories, test.targets):
        v_history, v_target = by_user[user]
        assert history[-1] == v_target and history[:-1][-len(v_history) + 1:] == v_history[-len(v_history) + 1:]
        assert target == (v_target + 1) % N_ITEMS


def test_holdout_takes_last_train_items_only():
    train = {str(u): list(range(u, u + 5)) for u in range(100)} | {"short": [1, 2]}
    split = holdout_split(train, fraction=0.1, seed=0)
    assert len(split.holdout.users) == 10 and "short" not in split.holdout.users
    for user, history, target in zip(split.holdout.users, split.holdout.histories, split.holdout.targets):
        assert split.train[user] == history and target == train[user][-1]
    batch = pad_batch([[0, 1, 2], [3, 4]], max_len=50)
    assert batch["item_id_list"].tolist() == [[1, 2], [4, 0]] and batch["target_seq"].tolist() == [[2, 3], [5, 0]]


def test_cli_trains_evaluates_saves_and_recommends(tmp_path, monkeypatch):
    from kgforge.cli import app

    root = write_scientific(tmp_path / "data", with_test=True)
    monkeypatch.setenv("KGFORGE_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    out = runner.invoke(app, ["rec", "eval", "--dataset", "amazon18_scientific", "--split", "test", "--data-dir",
                              str(root), "--train", "--seeds", "0", "--epochs", "2", "--sections", "students",
                              "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout[out.stdout.index("{"):])
    assert result["protocol"]["split"] == "test" and "full ranking" in result["protocol"]["ranking"]
    rows = {r["row"]: r for r in result["rows"]}
    graph_specs = ("text+graph:gnn-amazon18_scientific",
                   "text+graph:gnn-amazon18_scientific+graph-score:gnn-amazon18_scientific")
    graph_rows = {f"{m} + {spec} knowledge" for m in ("sasrec", "gru4rec") for spec in graph_specs}
    assert set(rows) == {"popularity", "sasrec (ID only)", "sasrec + text knowledge", "gru4rec (ID only)",
                         "gru4rec + text knowledge", *graph_rows}
    # --train made the graph rows' embedding set first (as `kgforge embed finetune` does), then used it
    assert all("status" not in rows[r] and f"+ {rows[r]['knowledge']} knowledge" in r for r in graph_rows)
    # the graph-score rows reuse the network of the row without it (late fusion), trained once
    for m in ("sasrec", "gru4rec"):
        fused = rows[f"{m} + {graph_specs[1]} knowledge"]
        assert fused["train_metrics"][0]["network_from"] == f"{m}-text_graph_gnn-amazon18_scientific-amazon18_scientific-s0 v1"
    assert all(0.0 <= r["ndcg@10"] <= r["hr@10"] <= r["hr@20"] <= 1.0 for r in rows.values())
    # without --train the saved models are read back: same numbers; with the embedding set deleted,
    # the graph rows say so and name the command that makes it
    assert runner.invoke(app, ["embed", "delete", "gnn-amazon18_scientific"]).exit_code == 0
    again = runner.invoke(app, ["rec", "eval", "--split", "test", "--data-dir", str(root), "--seeds", "0",
                                "--sections", "students", "--json"])
    assert again.exit_code == 0, again.output
    again_rows = json.loads(again.stdout[again.stdout.index("{"):])["rows"]
    assert again_rows[1]["ndcg@10"] == rows["sasrec (ID only)"]["ndcg@10"]
    missing_graph = [r for r in again_rows if r["row"] in graph_rows]
    assert len(missing_graph) == 4 and all(r["status"] == "not run" and "kgforge embed finetune" in r["note"]
                                           for r in missing_graph)
    rec = runner.invoke(app, ["rec", "recommend", "--model", "sasrec-none-amazon18_scientific-s0", "--history",
                              "5,6,7", "-k", "4", "--json"])
    assert rec.exit_code == 0, rec.output
    answer = json.loads(rec.stdout)
    assert len(answer["items"]) == 4 and not {"5", "6", "7"} & set(answer["items"]) and answer["version"] == 1
    bad = runner.invoke(app, ["rec", "recommend", "--model", "sasrec-none-amazon18_scientific-s0", "--history",
                              "5,nope"])
    assert bad.exit_code == 1 and "nope" in bad.output and "history" in bad.output
    user = runner.invoke(app, ["rec", "recommend", "--model", "sasrec-none-amazon18_scientific-s0", "--user", "3",
                               "--data-dir", str(root), "--json"])
    assert user.exit_code == 0, user.output
    missing = runner.invoke(app, ["rec", "eval", "--data-dir", str(root), "--seeds", "7", "--sections", "students"])
    assert missing.exit_code == 1 and "kgforge rec train" in missing.output


def test_cli_train_saves_a_version_and_rejects_unknown_models(tmp_path, monkeypatch):
    from kgforge.cli import app

    root = write_scientific(tmp_path / "data", with_test=False)
    monkeypatch.setenv("KGFORGE_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    out = runner.invoke(app, ["rec", "train", "--model", "gru4rec", "--epochs", "1", "--data-dir", str(root),
                              "--name", "tiny", "--json"])
    assert out.exit_code == 0, out.output
    saved = json.loads(out.stdout[out.stdout.index("{"):])
    assert saved["name"] == "tiny" and saved["version"] == 1 and saved["epochs_run"] == 1
    assert (tmp_path / "home" / "recommenders" / "tiny" / "v1" / "model.safetensors").is_file()
    listed = runner.invoke(app, ["rec", "list", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout)[0]["name"] == "tiny"
    bad = runner.invoke(app, ["rec", "train", "--model", "bert4rec", "--data-dir", str(root)])
    assert bad.exit_code == 1 and "sasrec" in bad.output
