"""`kgforge models status` and `kgforge train structural --resume` against the real embedded graph
database: a tiny KG (UMLS folder layout, so ``--dataset umls`` loads it) is imported, a structural
model is trained from the files, a job-like write adds nodes and triples, the model shows as stale
by exactly those triples, and a resume brings it up to date (new entities get rows)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from kg_builder.datasets import load_dataset
from kg_builder.graphdb import NodeWrite, TripleWrite
from kg_builder.graphdb.schema import ENTITY
from kg_builder.ingest import import_dataset
from kgforge.cli import models, train

pytestmark = pytest.mark.integration

app = typer.Typer()
app.add_typer(train.app, name="train")
app.add_typer(models.app, name="models")

ENTITIES = ["paris", "france", "berlin", "germany", "rome", "italy", "madrid", "spain", "europe"]
TRAIN = [("paris", "capital_of", "france"), ("berlin", "capital_of", "germany"), ("rome", "capital_of", "italy"),
         ("madrid", "capital_of", "spain"), ("france", "part_of", "europe"), ("germany", "part_of", "europe"),
         ("italy", "part_of", "europe"), ("spain", "part_of", "europe"), ("france", "borders", "germany"),
         ("france", "borders", "spain"), ("france", "borders", "italy")]
DEV = [("germany", "borders", "france")]
# What a job writes: two new nodes of the domain and three new triples (one between known nodes)
JOB_NODES = [("umls:lisbon", "Lisbon"), ("umls:portugal", "Portugal")]
JOB_TRIPLES = [("umls:lisbon", "capital_of", "umls:portugal"), ("umls:portugal", "part_of", "umls:europe"),
               ("umls:spain", "borders", "umls:france")]


def write_kg(root: Path) -> Path:
    folder = root / "kg" / "umls"
    folder.mkdir(parents=True)
    (folder / "entities.txt").write_text("".join(f"{e}\n" for e in ENTITIES))
    (folder / "entity2text.txt").write_text("".join(f"{e}\t{e.title()}\n" for e in ENTITIES))
    (folder / "entity2textlong.txt").write_text("".join(f"{e}\t{e.title()} is a place.\n" for e in ENTITIES))
    (folder / "relations.txt").write_text("capital_of\npart_of\nborders\n")
    (folder / "relation2text.txt").write_text("capital_of\tcapital of\npart_of\tpart of\nborders\tborders\n")
    for split, rows in (("train", TRAIN), ("dev", DEV)):
        (folder / f"{split}.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))
    return root


@pytest.fixture
def env(tmp_path, db_env, db_settings) -> dict[str, str]:
    """The session database (its password given, since the home differs) with a home of the test's own."""
    return {**db_env, "KGFORGE_HOME": str(tmp_path / "home"), "KGFORGE_DATA_DIR": str(write_kg(tmp_path / "data")),
            "KGFORGE_GRAPH_PASSWORD": db_settings.resolved_graph_password()}


def status(runner: CliRunner, env: dict[str, str], *extra: str) -> dict:
    result = runner.invoke(app, ["models", "status", "--json", *extra], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def by_name(report: dict, name: str) -> dict:
    return next(m for m in report["models"] if m["name"] == name)


def test_status_counts_new_triples_and_resume_brings_the_model_up_to_date(store, env, one_torch_thread):
    import_dataset(store, load_dataset("umls", env["KGFORGE_DATA_DIR"]))
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "structural", "--dataset", "umls", "--rank", "8", "--epochs", "20",
                                  "--eval-every", "0", "--json"], env=env)
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["metrics"]["trained_on"]["source"] == "dataset"

    fresh = by_name(status(runner, env), "structural-umls")
    assert fresh["kind"] == "complex-n3" and fresh["domain"] == "umls"
    assert fresh["trained_on"]["triples"] == len(TRAIN) and fresh["trained_on"]["entities"] == len(ENTITIES)
    assert fresh["stale"] is False, status(runner, env)
    assert fresh["new_triples"] == 0 and fresh["graph_now"]["edges"] == len(TRAIN)

    # a job writes: new nodes of the domain (as the resolver creates them) and new triples
    store.upsert_nodes([NodeWrite(label=ENTITY, id=i, name=n, props={"domain": "umls"}, job_id="job-1")
                        for i, n in JOB_NODES])
    store.upsert_triples([TripleWrite(h, r, t, job_id="job-1", confidence=0.9) for h, r, t in JOB_TRIPLES])
    stale = by_name(status(runner, env), "structural-umls")
    assert stale["stale"] is True and stale["new_triples"] == len(JOB_TRIPLES)
    assert stale["graph_now"]["job_edges"] == len(JOB_TRIPLES) and "dataset files" in stale["compared"]
    assert stale["graph_now"]["newest"] >= fresh["graph_now"]["newest"]

    # an embedding set of the imported entities lacks the two new nodes
    from gnn.store import EmbeddingSet, EmbeddingStore
    from kg_builder.settings import Settings

    EmbeddingStore(Settings(home=Path(env["KGFORGE_HOME"]))).save(EmbeddingSet.create(
        "umls-test", np.ones((len(ENTITIES), 4), np.float32), [f"umls:{e}" for e in ENTITIES], model="test",
        domain="umls"))
    embedding = status(runner, env)["embedding_sets"][0]
    assert embedding["name"] == "umls-test" and embedding["nodes"] == len(ENTITIES)
    assert embedding["nodes_now"] == len(ENTITIES) + len(JOB_NODES) and embedding["missing_nodes"] == len(JOB_NODES)

    resumed = runner.invoke(app, ["train", "structural", "--dataset", "umls", "--resume", "--epochs", "5",
                                  "--eval-every", "0", "--json"], env=env)
    assert resumed.exit_code == 0, resumed.output
    trained_on = json.loads(resumed.stdout)["metrics"]["trained_on"]
    assert trained_on["source"] == "graph" and trained_on["triples"] == len(TRAIN) + len(JOB_TRIPLES)
    assert trained_on["new_triples"] == len(JOB_TRIPLES) and trained_on["new_entities"] == len(JOB_NODES)
    assert trained_on["graph"]["edges"] == len(TRAIN) + len(JOB_TRIPLES)
    assert trained_on["resumed_from"]["optimizer_state"] is True
    vocab = json.loads((Path(env["KGFORGE_HOME"]) / "models" / "structural-umls" / "vocab.json").read_text())
    assert vocab["entities"][:len(ENTITIES)] == ENTITIES and set(vocab["entities"][len(ENTITIES):]) == {"lisbon",
                                                                                                          "portugal"}
    current = by_name(status(runner, env), "structural-umls")
    assert current["stale"] is False and current["new_triples"] == 0
    assert current["compared"] == "graph edges at training time"

    again = runner.invoke(app, ["train", "structural", "--dataset", "umls", "--resume", "--epochs", "1"], env=env)
    assert again.exit_code == 0, again.output
    assert "0 new triples, 0 new entities" in again.stdout and "(graph)" in again.stdout

    table = runner.invoke(app, ["models", "status"], env=env)
    assert table.exit_code == 0 and "structural-umls" in table.stdout and "umls-test" in table.stdout


def test_status_without_a_graph_still_lists(tmp_path, env):
    runner = CliRunner()
    home = Path(env["KGFORGE_HOME"]) / "models" / "structural-umls"
    home.mkdir(parents=True)
    (home / "config.json").write_text(json.dumps({"kind": "complex-n3", "dataset": "umls", "trained_on": {
        "domain": "umls", "triples": 11, "entities": 9, "source": "dataset", "graph": None}}))
    listed = status(runner, env, "--no-graph")
    assert by_name(listed, "structural-umls")["stale"] is None
    unreachable = status(runner, {**env, "KGFORGE_GRAPH_BOLT_PORT": "1"})
    assert unreachable["graph_error"] and by_name(unreachable, "structural-umls")["compared"] == "graph unavailable"


def test_resume_of_a_domain_the_graph_does_not_hold_is_a_clear_error(store, env):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "structural", "--dataset", "umls", "--resume"], env=env)
    assert result.exit_code == 1 and "no training triples of 'umls'" in result.output
