"""`kgforge train relations` and `kgforge train utility` end to end on a tiny KG written into tmp_path.

The graph uses the UMLS folder layout (descriptions in entity2textlong.txt) so ``--dataset umls``
loads it; every description names other entities, so the utility labels (a document names a
held-out neighbour) have both classes. The real MiniLM encoder is used.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from kg_builder.models.encoder import TextEncoder
from kg_builder.models.relation_classifier import RelationClassifier, entity_text
from kg_builder.models.saved import ModelNotTrainedError
from kg_builder.retrieval.saved_utility import load_utility, utility_model_dir
from kg_builder.settings import Settings
from kgforge.cli import train

app = typer.Typer()
app.add_typer(train.app, name="train")

DESCRIPTIONS = {
    "paris": ("Paris", "Paris is the capital of France, on the river Seine."),
    "france": ("France", "France is a country in Europe bordering Germany, Spain and Italy; its capital is Paris."),
    "berlin": ("Berlin", "Berlin is the capital and largest city of Germany."),
    "germany": ("Germany", "Germany is a country in central Europe; its capital is Berlin."),
    "rome": ("Rome", "Rome is the capital of Italy, an ancient city."),
    "italy": ("Italy", "Italy is a country in southern Europe whose capital is Rome."),
    "madrid": ("Madrid", "Madrid is the capital of Spain, in the centre of the peninsula."),
    "spain": ("Spain", "Spain is a country in Europe on the Iberian peninsula; Madrid is its capital."),
    "europe": ("Europe", "Europe is a continent; France, Germany, Italy and Spain are among its countries."),
}
TRAIN = [("paris", "capital_of", "france"), ("berlin", "capital_of", "germany"), ("rome", "capital_of", "italy"),
         ("madrid", "capital_of", "spain"), ("france", "part_of", "europe"), ("germany", "part_of", "europe"),
         ("italy", "part_of", "europe"), ("spain", "part_of", "europe"), ("france", "borders", "germany"),
         ("france", "borders", "spain"), ("france", "borders", "italy")]
DEV = [("germany", "borders", "france")]


def write_kg(root: Path, *, name: str = "umls", descriptions: bool = True) -> Path:
    folder = root / "kg" / name
    folder.mkdir(parents=True)
    (folder / "entities.txt").write_text("".join(f"{e}\n" for e in DESCRIPTIONS))
    (folder / "entity2text.txt").write_text("".join(f"{e}\t{n}\n" for e, (n, _) in DESCRIPTIONS.items()))
    if descriptions:
        (folder / "entity2textlong.txt").write_text("".join(f"{e}\t{d}\n" for e, (_, d) in DESCRIPTIONS.items()))
    (folder / "relations.txt").write_text("capital_of\npart_of\nborders\n")
    (folder / "relation2text.txt").write_text("capital_of\tcapital of\npart_of\tpart of\nborders\tshares a border with\n")
    for split, rows in (("train", TRAIN), ("dev", DEV)):
        (folder / f"{split}.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))
    return root


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs torch on one thread (``one_torch_thread`` in tests/conftest.py)."""


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {"KGFORGE_HOME": str(tmp_path / "home"), "KGFORGE_DATA_DIR": str(tmp_path / "nowhere")}


def test_train_relations_saves_a_classifier_and_reports_the_prior(tmp_path, env, encoder):
    root = write_kg(tmp_path / "data")
    runner = CliRunner()
    out = runner.invoke(app, ["train", "relations", "--dataset", "umls", "--data-dir", str(root), "--epochs", "30",
                              "--batch-size", "4", "--holdout-fraction", "0.25", "--json"], env=env)
    assert out.exit_code == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["model_name"] == "relations-umls"
    directory = Path(summary["directory"])
    assert directory == (tmp_path / "home" / "models" / "relations-umls").resolve()
    held = summary["metrics"]["holdout"]
    assert held["entities"] == 2 and set(held) == {"entities", "classifier", "prior"}
    assert {"micro_f1", "macro_f1", "map", "recall@5"} <= set(held["prior"])
    assert len(summary["epoch_losses"]) == 30

    model = RelationClassifier.load(directory)
    assert model.relation_ids == ["capital_of", "part_of", "borders"]
    probs = model.predict([entity_text("Lisbon", "Lisbon is the capital of Portugal.")], encoder)
    assert probs.shape == (1, 3) and model.top_k(probs[0], k=1)[0][0] == "capital_of"

    table = runner.invoke(app, ["train", "relations", "--dataset", "umls", "--data-dir", str(root), "--epochs", "2",
                                "--name", "relations-other"], env=env)
    assert table.exit_code == 0, table.stderr
    assert "prior baseline" in table.stdout and "MAP" in table.stdout
    assert (tmp_path / "home" / "models" / "relations-other" / "model.safetensors").exists()


def test_train_relations_rejects_a_bad_holdout(tmp_path, env):
    root = write_kg(tmp_path / "data")
    out = CliRunner().invoke(app, ["train", "relations", "--dataset", "umls", "--data-dir", str(root),
                                   "--holdout-fraction", "1.5"], env=env)
    assert out.exit_code == 1
    assert "holdout_fraction" in out.stderr
    assert not (tmp_path / "home" / "models" / "relations-umls").exists()


def test_train_utility_saves_retriever_and_reranker_that_load_back(tmp_path, env, encoder):
    root = write_kg(tmp_path / "data")
    runner = CliRunner()
    out = runner.invoke(app, ["train", "utility", "--dataset", "umls", "--data-dir", str(root), "--seed", "1",
                              "--json"], env=env)
    assert out.exit_code == 0, out.stderr
    summary = json.loads(out.stdout)
    settings = Settings(home=tmp_path / "home")
    directory = utility_model_dir(settings, "umls")
    assert Path(summary["directory"]) == directory
    assert summary["counts"]["train_entities"] + summary["counts"]["test_entities"] == 5  # entities with 2+ neighbours
    assert {"test/utility", "test/hybrid_similarity"} <= set(summary["metrics"])
    assert set(summary["metrics"]["test/utility"]) == {"precision@5", "ndcg@5"}
    assert summary["mention_matcher"] == {"max_name_share": None, "names": 9, "entities": 9}
    for part in ("retriever/config.json", "reranker/model.safetensors", "mentions.json", "training.json"):
        assert (directory / part).exists(), part

    reranker = load_utility(settings, "umls", encoder)
    assert len(reranker.retriever.corpus) == 9
    assert reranker.weights.coef == pytest.approx(list(summary["coefficients"].values()))
    hits = reranker.retriever.run("Germany", k=5).hits
    assert hits[0].doc_id == "umls:doc:germany"
    ranked = reranker.run("Germany", hits, entity_id="germany", known_neighbours={"europe"})
    assert sorted(ranked.doc_ids) == sorted(h.doc_id for h in hits)
    assert all(0.0 <= h.utility <= 1.0 for h in ranked.hits)
    assert np.all(np.diff([h.utility for h in ranked.hits]) <= 0)

    table = runner.invoke(app, ["train", "utility", "--dataset", "umls", "--data-dir", str(root), "--seed", "1"],
                          env=env)
    assert table.exit_code == 0, table.stderr
    assert "hybrid similarity" in table.stdout and "nDCG@5" in table.stdout
    assert not directory.with_name(directory.name + ".partial").exists()


def test_train_utility_with_a_name_filter_drops_names_found_everywhere(tmp_path, env, encoder):
    root = write_kg(tmp_path / "data")
    out = CliRunner().invoke(app, ["train", "utility", "--dataset", "umls", "--data-dir", str(root), "--seed", "1",
                                   "--max-name-share", "0.5", "--json"], env=env)
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["mention_matcher"]["max_name_share"] == 0.5
    reranker = load_utility(Settings(home=tmp_path / "home"), "umls", encoder)
    # "Europe" is named in 5 of 9 documents (over half); "France" in 3.
    assert "europe" not in reranker.mentions.names and reranker.mentions.names["france"] == "France"
    assert reranker.mentions.find("Paris and Europe") == {"paris"}


def test_utility_needs_descriptions_and_a_trained_model_names_its_command(tmp_path, env, encoder):
    root = write_kg(tmp_path / "data", name="fb15k237", descriptions=False)
    out = CliRunner().invoke(app, ["train", "utility", "--dataset", "fb15k237", "--data-dir", str(root)], env=env)
    assert out.exit_code == 1
    assert "no entity descriptions" in out.stderr
    with pytest.raises(ModelNotTrainedError, match="kgforge train utility --dataset umls"):
        load_utility(Settings(home=tmp_path / "home"), "umls", encoder)
