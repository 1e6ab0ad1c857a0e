"""Hybrid ranker (ComplEx + frozen MiniLM entity text) on a tiny graph where the text carries the answer."""

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from kg_builder.datasets import Dataset, EntityRecord, RelationRecord, TripleRecord
from kg_builder.errors import KGForgeError
from kg_builder.evaluation.kgc import Query, evaluate_split
from kg_builder.models.hybrid import ALL, FOLDS, HybridKGModel, query_fold
from kg_builder.models.saved import ModelNotTrainedError
from kg_builder.models.structural import ComplEx
from kg_builder.settings import Settings
from kg_builder.training.hybrid import fit_hybrid
from kg_builder.training.structural import train_structural
from kgforge.cli import evaluate, train

# verb -> agent noun: the text makes these obvious; the graph has few examples and no pattern
PAIRS = [("run", "runner"), ("swim", "swimmer"), ("teach", "teacher"), ("bake", "baker"), ("paint", "painter"),
         ("write", "writer"), ("sing", "singer"), ("drive", "driver"), ("farm", "farmer"), ("build", "builder"),
         ("play", "player"), ("hunt", "hunter")]
TRAIN_PAIRS, DEV_PAIRS = PAIRS[:4], PAIRS[4:]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """torch on one thread (``one_torch_thread`` in tests/conftest.py)."""


def agents() -> Dataset:
    ids = [w for pair in PAIRS for w in pair]
    train = [TripleRecord(v, "agent", n) for v, n in TRAIN_PAIRS]
    train += [TripleRecord(ids[i], "listed_after", ids[i - 1]) for i in range(1, len(ids))]
    return Dataset(name="agents", kind="kg",
                   entities=[EntityRecord(w, w, f"the word {w}") for w in ids],
                   relations=[RelationRecord("agent", "agent noun of"), RelationRecord("listed_after", "listed after")],
                   triples={"train": train, "dev": [TripleRecord(v, "agent", n) for v, n in DEV_PAIRS],
                            "test": [TripleRecord(v, "agent", n) for v, n in DEV_PAIRS[:3]]})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    home = tmp_path_factory.mktemp("hybrid-home")
    settings = Settings(home=home)
    data = agents()
    train_structural(dataset=data, settings=settings, rank=8, epochs=60, batch_size=16, lr=0.3,
                     regularization=0.0, max_minutes=1, seed=0)
    result = fit_hybrid(dataset=data, settings=settings, split="dev", min_queries=1)
    return settings, data, result


def test_fitting_puts_weight_on_the_text_and_beats_the_structure_alone(fitted):
    _, _, result = fitted
    assert result.metrics["weights"]["agent|tail"] > 0
    assert result.metrics["hybrid"]["mrr"] > result.metrics["structural_only"]["mrr"] + 0.2
    assert "2-fold cross-fitted" in result.metrics["protocol"]
    assert set(result.timings) >= {"embed_seconds", "fit_seconds", "total_seconds"}


def test_the_fit_split_is_scored_with_the_other_folds_weights(fitted):
    result = fitted[2]
    model = result.model
    model = HybridKGModel(model.structural, model.text.numpy(), {ALL: {"*": 0.0}, FOLDS[0]: {"*": 5.0}, FOLDS[1]: {"*": 0.0}},
                          fit_split="dev", meta=model.meta)
    queries = [Query(v, "agent") for v, _ in PAIRS] + [Query(n, "agent", True) for _, n in PAIRS]
    structural, text = model.components(queries)
    crossed = model.scorer_for("dev")(queries)
    plain = model.scorer_for("test")(queries)
    assert np.allclose(plain, structural.numpy(), atol=1e-5)  # "all" has weight 0
    for i, q in enumerate(queries):
        expected = structural[i] + (5.0 if query_fold(q) == 1 else 0.0) * text[i]  # fold 1 uses fold0's weights
        assert np.allclose(crossed[i], expected.numpy(), atol=1e-5)
    assert {query_fold(q) for q in queries} == {0, 1}


def test_round_trip_and_a_mismatched_structural_model_is_refused(fitted, tmp_path):
    settings, _, result = fitted
    loaded = HybridKGModel.load("hybrid-agents", settings=settings)
    queries = [Query("sing", "agent"), Query("writer", "agent", True)]
    assert np.allclose(loaded.score(queries), result.model.score(queries), atol=1e-5)
    assert loaded.weights == result.model.weights
    other = Settings(home=tmp_path)
    with pytest.raises(ModelNotTrainedError, match="kgforge train hybrid --dataset agents"):
        HybridKGModel.load("hybrid-agents", settings=other)
    ComplEx(["a", "b"], ["agent", "listed_after"], rank=2).save(tmp_path / "models" / "structural-agents")
    (tmp_path / "models" / "hybrid-agents").mkdir(parents=True)
    for f in ("config.json", "model.safetensors"):
        (tmp_path / "models" / "hybrid-agents" / f).write_bytes((settings.home / "models" / "hybrid-agents" / f).read_bytes())
    with pytest.raises(KGForgeError, match="fit it again"):
        HybridKGModel.load("hybrid-agents", settings=other)


def test_evaluation_on_test_uses_the_weights_fitted_on_all_of_dev(fitted):
    _, data, result = fitted
    model = result.model
    test = evaluate_split(model.scorer_for("test"), data, "test", entity_ids=model.entity_ids)
    alone = evaluate_split(model.structural.score, data, "test", entity_ids=model.entity_ids)
    assert test.filtered["both"].mrr > alone.filtered["both"].mrr


def write_kg(root: Path, data: Dataset) -> Path:
    folder = root / "kg" / "umls"
    folder.mkdir(parents=True)
    (folder / "entities.txt").write_text("".join(f"{e.id}\n" for e in data.entities))
    (folder / "entity2text.txt").write_text("".join(f"{e.id}\t{e.name}\n" for e in data.entities))
    (folder / "entity2textlong.txt").write_text("".join(f"{e.id}\t{e.description}\n" for e in data.entities))
    (folder / "relations.txt").write_text("".join(f"{r.id}\n" for r in data.relations))
    (folder / "relation2text.txt").write_text("".join(f"{r.id}\t{r.text}\n" for r in data.relations))
    for split, rows in data.triples.items():
        (folder / f"{split}.tsv").write_text("".join(f"{t.head}\t{t.relation}\t{t.tail}\n" for t in rows))
    return root


def test_cli_fits_and_evaluates_the_hybrid_ranker(tmp_path):
    app = typer.Typer()
    app.add_typer(train.app, name="train")
    app.add_typer(evaluate.app, name="eval")
    root = write_kg(tmp_path / "data", agents())
    env = {"KGFORGE_HOME": str(tmp_path / "home"), "KGFORGE_DATA_DIR": str(tmp_path / "nowhere")}
    runner = CliRunner()
    missing = runner.invoke(app, ["train", "hybrid", "--dataset", "umls", "--data-dir", str(root)], env=env)
    assert missing.exit_code != 0 and "kgforge train structural --dataset umls" in missing.output
    done = runner.invoke(app, ["train", "structural", "--dataset", "umls", "--rank", "8", "--epochs", "30",
                               "--data-dir", str(root)], env=env)
    assert done.exit_code == 0, done.output
    fit = runner.invoke(app, ["train", "hybrid", "--dataset", "umls", "--data-dir", str(root), "--json"], env=env)
    assert fit.exit_code == 0, fit.output
    assert json.loads(fit.stdout)["metrics"]["split"] == "dev"
    out = runner.invoke(app, ["eval", "kgc", "--ranker", "hybrid", "--dataset", "umls", "--split", "dev",
                              "--data-dir", str(root), "--json"], env=env)
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout)
    assert "cross-fitted" in payload["protocol"] and payload["model"] == "hybrid-umls"
    assert payload["metrics"]["filtered"]["both"]["mrr"] == pytest.approx(
        json.loads(fit.stdout)["metrics"]["hybrid"]["mrr"])
