"""`kgforge train reranker`, then `kgforge eval triples` and `kgforge eval kgc --rerank` with it, on a
tiny KG in the UMLS layout written into tmp_path (real MiniLM, real ComplEx)."""

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kg_builder.models.cross_encoder import TripleCrossEncoder
from kgforge.cli import evaluate, train

app = typer.Typer()
app.add_typer(train.app, name="train")
app.add_typer(evaluate.app, name="eval")

NAMES = {"paris": "Paris", "france": "France", "berlin": "Berlin", "germany": "Germany", "rome": "Rome",
         "italy": "Italy", "europe": "Europe", "asia": "Asia"}
TRAIN = [("paris", "capital_of", "france"), ("berlin", "capital_of", "germany"), ("france", "part_of", "europe"),
         ("germany", "part_of", "europe"), ("italy", "part_of", "europe"), ("france", "borders", "germany")]
DEV = [("rome", "capital_of", "italy"), ("germany", "borders", "france")]
TEST = [("italy", "borders", "france")]


def write_kg(root: Path) -> Path:
    folder = root / "kg" / "umls"
    folder.mkdir(parents=True)
    (folder / "entities.txt").write_text("".join(f"{e}\n" for e in NAMES))
    (folder / "entity2text.txt").write_text("".join(f"{e}\t{n}\n" for e, n in NAMES.items()))
    (folder / "entity2textlong.txt").write_text("".join(
        f"{e}\t{n} is a {'continent' if e in ('europe', 'asia') else 'place'}.\n" for e, n in NAMES.items()))
    (folder / "relations.txt").write_text("capital_of\npart_of\nborders\n")
    (folder / "relation2text.txt").write_text("capital_of\tcapital of\npart_of\tpart of\nborders\tborders\n")
    for split, rows in (("train", TRAIN), ("dev", DEV), ("test", TEST)):
        (folder / f"{split}.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))
    return root


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """torch on one thread (``one_torch_thread`` in tests/conftest.py)."""


def test_train_reranker_then_evaluate_with_it(tmp_path):
    root = write_kg(tmp_path / "data")
    env = {"KGFORGE_HOME": str(tmp_path / "home"), "KGFORGE_DATA_DIR": str(tmp_path / "nowhere")}
    runner = CliRunner()
    data = ["--dataset", "umls", "--data-dir", str(root)]
    out = runner.invoke(app, ["train", "structural", *data, "--rank", "8", "--epochs", "20", "--json"], env=env)
    assert out.exit_code == 0, out.stderr
    out = runner.invoke(app, ["train", "reranker", *data, "--epochs", "2", "--batch-size", "4", "--lr", "1e-4",
                              "--max-minutes", "2", "--json"], env=env)
    assert out.exit_code == 0, out.stderr
    summary = json.loads(out.stdout)  # stdout is the JSON alone (the trainer's printer is off)
    metrics = summary["metrics"]
    assert metrics["hard_negatives_from"] == "saved structural-umls" and metrics["examples"]["hard"] > 0
    assert metrics["dev_counts"]["true"] == 2 and {"dev_accuracy_corrupted", "dev_accuracy_hard"} <= set(metrics)
    assert metrics["dev_rerank"]["queries"] == 2 and summary["timings"]["train_seconds"] > 0
    model = TripleCrossEncoder.load(Path(summary["directory"]))
    assert model.threshold_logit == pytest.approx(metrics["dev_threshold_logit"])

    table = runner.invoke(app, ["train", "reranker", *data, "--epochs", "1", "--batch-size", "4",
                                "--max-minutes", "1", "--rank-queries", "0", "--name", "reranker-other"], env=env)
    assert table.exit_code == 0, table.stderr
    assert "accuracy vs hard" in table.stdout and "top-10 MRR" not in table.stdout
    assert (tmp_path / "home" / "models" / "reranker-other" / "cross_encoder" / "model.safetensors").exists()

    triples = runner.invoke(app, ["eval", "triples", *data, "--split", "test", "--json"], env=env)
    assert triples.exit_code == 0, triples.stderr
    result = json.loads(triples.stdout)
    assert result["positives"] == 1 and 0.0 <= result["accuracy"] <= 1.0
    assert result["hard"]["positives"] == 1 and result["hard"]["negatives"] == 1  # ComplEx's best false tail
    kgc = runner.invoke(app, ["eval", "kgc", *data, "--split", "dev", "--rerank", "reranker-umls", "--rerank-k", "3",
                              "--json"], env=env)
    assert kgc.exit_code == 0, kgc.stderr
    assert json.loads(kgc.stdout)["model"] == "structural-umls+reranker-umls"
