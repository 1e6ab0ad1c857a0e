"""`kgforge train dense` and `kgforge eval kgc` on a tiny KG-BERT-layout folder, in process (CliRunner).

The sub-apps are mounted on a local typer app, so these tests run whether or not the main app
registers them yet.
"""

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kgforge.cli import evaluate, train

app = typer.Typer()
app.add_typer(train.app, name="train")
app.add_typer(evaluate.app, name="eval")

ENTITIES = {"paris": "Paris", "france": "France", "berlin": "Berlin", "germany": "Germany", "rome": "Rome",
            "italy": "Italy"}
TRAIN = [("paris", "capital_of", "france"), ("berlin", "capital_of", "germany"), ("france", "borders", "germany"),
         ("italy", "borders", "france")]
DEV = [("rome", "capital_of", "italy")]
TEST = [("germany", "borders", "france")]


def write_kg(root: Path) -> Path:
    """A 6-entity graph in the UMLS folder layout (entity2textlong.txt holds the descriptions)."""
    folder = root / "kg" / "umls"
    folder.mkdir(parents=True)
    (folder / "entities.txt").write_text("".join(f"{e}\n" for e in ENTITIES))
    (folder / "entity2text.txt").write_text("".join(f"{e}\t{n}\n" for e, n in ENTITIES.items()))
    (folder / "entity2textlong.txt").write_text("".join(f"{e}\t{n} is a place in Europe.\n"
                                                        for e, n in ENTITIES.items()))
    (folder / "relations.txt").write_text("capital_of\nborders\n")
    (folder / "relation2text.txt").write_text("capital_of\tcapital of\nborders\tshares a border with\n")
    for split, rows in (("train", TRAIN), ("dev", DEV), ("test", TEST)):
        (folder / f"{split}.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))
    return root


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs torch on one thread (``one_torch_thread`` in tests/conftest.py)."""


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {"KGFORGE_HOME": str(tmp_path / "home"), "KGFORGE_DATA_DIR": str(tmp_path / "nowhere")}


def test_eval_without_a_model_names_the_training_command(tmp_path, env):
    root = write_kg(tmp_path / "data")
    result = CliRunner().invoke(app, ["eval", "kgc", "--ranker", "dense", "--dataset", "umls", "--split", "test", "--data-dir", str(root)],
                                env=env)
    assert result.exit_code == 1
    assert "kgforge train dense --dataset umls" in result.stderr


def test_train_then_eval_prints_one_json_object(tmp_path, env):
    root = write_kg(tmp_path / "data")
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "dense", "--dataset", "umls", "--data-dir", str(root), "--epochs", "1",
                                  "--batch-size", "4", "--max-length", "16", "--json"], env=env)
    assert trained.exit_code == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert summary["model_name"] == "dense-umls" and summary["fit"]["steps"] == 2
    assert Path(summary["directory"]) == (tmp_path / "home" / "models" / "dense-umls").resolve()

    out = runner.invoke(app, ["eval", "kgc", "--ranker", "dense", "--dataset", "umls", "--split", "test", "--data-dir", str(root),
                              "--json"], env=env)
    assert out.exit_code == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["dataset"], report["split"], report["model"]) == ("umls", "test", "dense-umls")
    assert "bi-encoder dense-umls ranks all 6 entities" in report["protocol"]
    both = report["metrics"]["filtered"]["both"]
    assert both["count"] == 2 and 1 <= both["mr"] <= 6 and set(both) >= {"mrr", "hits_at_1", "hits_at_3",
                                                                          "hits_at_10"}

    table = runner.invoke(app, ["eval", "kgc", "--ranker", "dense", "--dataset", "umls", "--split", "dev", "--data-dir", str(root)],
                          env=env)
    assert table.exit_code == 0 and "Hits@10" in table.stdout and "filtered" in table.stdout
