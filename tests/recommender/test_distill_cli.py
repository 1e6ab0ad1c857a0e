"""``kgforge rec teacher | distill | eval --sections teachers,distilled`` end to end on a tiny RecBole
folder (the one ``test_data.py`` writes): the teacher trains and saves, distilled students save as
plain students, and the table gains the teacher, LLM-teacher, seed-user and distilled rows."""

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

_spec = importlib.util.spec_from_file_location("rec_test_data", Path(__file__).with_name("test_data.py"))
_test_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_test_data)
write_scientific = _test_data.write_scientific  # the tiny RecBole folder of test_data.py

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _json(out):
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout[out.stdout.index("{"):])


def test_cli_teacher_distill_and_eval_rows(tmp_path, monkeypatch):
    from kgforge.cli import app

    root = write_scientific(tmp_path / "data", with_test=False, windowed_user=False)
    monkeypatch.setenv("KGFORGE_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    teacher = _json(runner.invoke(app, ["rec", "teacher", "--data-dir", str(root), "--epochs", "1", "--json"]))
    assert teacher["name"] == "text-teacher-minilm-amazon18_scientific-s0" and teacher["epochs_run"] == 1
    distilled = _json(runner.invoke(app, ["rec", "distill", "--model", "gru4rec", "--method", "dllm2rec+slmrec",
                                          "--epochs", "1", "--data-dir", str(root), "--json"]))
    assert distilled["name"] == "gru4rec-dllm2rec_slmrec-text-amazon18_scientific-s0"
    assert set(distilled["last_distill_terms"]) >= {"rank", "emb", "cos", "l2", "teacher_space"}
    kar = _json(runner.invoke(app, ["rec", "distill", "--model", "sasrec", "--method", "kar", "--knowledge",
                                    "text+teacher:text-teacher-minilm-amazon18_scientific-s0", "--epochs", "1",
                                    "--data-dir", str(root), "--json"]))
    listed = json.loads(runner.invoke(app, ["rec", "list", "--json"]).stdout)
    kar_meta = next(m for m in listed if m["name"] == kar["name"])
    assert kar_meta["knowledge"].startswith("kar(") and kar_meta["knowledge_dim"] == 64  # frozen adapter output
    rec = _json(runner.invoke(app, ["rec", "recommend", "--model", kar["name"], "--history", "5,6", "--json"]))
    assert len(rec["items"]) == 10
    bad = runner.invoke(app, ["rec", "distill", "--method", "kd", "--data-dir", str(root)])
    assert bad.exit_code != 0 and "method" in bad.output
    table = _json(runner.invoke(app, ["rec", "eval", "--data-dir", str(root), "--sections", "teachers,distilled",
                                      "--students", "gru4rec", "--methods", "dllm2rec+slmrec", "--seeds", "0",
                                      "--train-missing", "--epochs", "1", "--json"]))
    rows = {r["row"]: r for r in table["rows"]}
    assert rows["LLM teacher (rationales)"]["status"] == "not run"
    assert "text teacher (MiniLM fine-tuned, text only)" in rows
    seeded = next(r for name, r in rows.items() if "seed-user" in name)
    assert seeded["seed_users"]["calls_saved"] == 0  # 60 users, all seeds at the default of 500
    # the distilled row read the model saved above (no retraining); --train-missing made the graph
    # rows' embedding set (as `kgforge embed finetune` does), so the graph row ran too
    assert rows["gru4rec + dllm2rec+slmrec"]["train_metrics"][0]["saved"].endswith("v1")
    graph_row = rows["gru4rec + dllm2rec+slmrec + graph"]
    assert "status" not in graph_row and "graph:gnn-amazon18_scientific" in graph_row["knowledge"]
    assert 0.0 <= graph_row["ndcg@10"] <= graph_row["hr@10"] <= 1.0
    # the text + graph teacher: its own row, and distilled rows from it (saved under -tgt- names)
    fused = next(r for name, r in rows.items() if name.startswith("text + graph teacher"))
    assert fused["teacher"]["graph_set"] == "gnn-amazon18_scientific@1"
    assert fused["teacher"]["text_teacher"] == "text-teacher-minilm-amazon18_scientific-s0 v1"
    from_fused = rows["gru4rec + dllm2rec+slmrec (text + graph teacher)"]
    assert from_fused["teacher"]["teacher"] == "text+graph teacher"
    assert from_fused["train_metrics"][0]["saved"] == "gru4rec-dllm2rec_slmrec-tgt-text-amazon18_scientific-s0 v1"
    assert "gru4rec + dllm2rec+slmrec + graph (text + graph teacher)" in rows
    # the graph-score rows add the set's own score to the network of the graph row (late fusion, no training)
    scored = rows["gru4rec + dllm2rec+slmrec + graph + graph score (text + graph teacher)"]
    assert scored["train_metrics"][0]["network_from"] == \
        "gru4rec-dllm2rec_slmrec-tgt-text_graph_gnn-amazon18_scientific-amazon18_scientific-s0 v1"
    assert "status" not in scored and scored["knowledge"].endswith("+graph-score:gnn-amazon18_scientific")
    by_cli = _json(runner.invoke(app, ["rec", "distill", "--model", "sasrec", "--teacher-graph", "gnn-amazon18_scientific",
                                       "--epochs", "1", "--data-dir", str(root), "--json"]))
    assert by_cli["name"] == "sasrec-dllm2rec_slmrec-tgt-text-amazon18_scientific-s0"
    meta = next(m for m in json.loads(runner.invoke(app, ["rec", "list", "--json"]).stdout) if m["name"] == by_cli["name"])
    assert meta["train_config"]["distillation"]["graph_set"] == "gnn-amazon18_scientific@1"
    refused = runner.invoke(app, ["rec", "distill", "--method", "kar", "--teacher-graph", "gnn-amazon18_scientific",
                                  "--data-dir", str(root)])
    assert refused.exit_code != 0 and "teacher_graph" in refused.output
