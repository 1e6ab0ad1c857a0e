"""Holding a split out of the graph and checking a job's kept triples against it: ``kgforge import
--splits`` (``keep_splits``) and ``kgforge jobs submit|watch --check-split`` (``check_split``).

A small KG folder in the UMLS layout and a recording client stand in for the data and the API: the
check is pure bookkeeping over the dataset's split file and what ``GET /v1/entities`` returns. The
end-to-end run (``scripts/main_job.sh`` on a fresh home) is ``tests/e2e/test_main_job.py``; the
import's edge counts against the real UMLS are the integration test at the end.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kg_builder.datasets import load_dataset
from kg_builder.errors import InvalidInputError
from kgforge.cli.imports import keep_splits
from kgforge.cli.jobs import check_split, entity_neighbours


def _kg_folder(root: Path) -> Path:
    folder = root / "kg" / "umls"
    folder.mkdir(parents=True)
    entities = ["virus", "organism", "animal", "fish", "hormone"]
    (folder / "entities.txt").write_text("\n".join(entities) + "\n")
    (folder / "entity2text.txt").write_text("".join(f"{e}\t{e}\n" for e in entities))
    (folder / "entity2textlong.txt").write_text("".join(f"{e}\tA {e}.\n" for e in entities))
    (folder / "relations.txt").write_text("isa\ninteracts_with\nlocation_of\n")
    (folder / "relation2text.txt").write_text("isa\tis a\ninteracts_with\tinteracts with\nlocation_of\tlocation of\n")
    (folder / "train.tsv").write_text("virus\tinteracts_with\tanimal\nanimal\tisa\torganism\n")
    (folder / "dev.tsv").write_text("virus\tlocation_of\thormone\n")
    (folder / "test.tsv").write_text("virus\tisa\torganism\nvirus\tinteracts_with\tfish\nfish\tisa\tanimal\n")
    return root


class _Client:
    """Answers ``GET /v1/entities/{id}`` with the given out-edges of each node (as the API does)."""

    def __init__(self, edges: dict[str, list[tuple[str, str, str | None]]]):
        self.edges = edges
        self.calls: list[str] = []

    def request(self, method: str, path: str, **kwargs):
        assert method == "GET" and path.startswith("/v1/entities/")
        node = path.removeprefix("/v1/entities/")
        self.calls.append(node)
        return {"node": {"id": node}, "neighbours": [
            {"relation": rel, "tail": tail, "direction": "out", "job_id": job} for rel, tail, job in self.edges[node]]}


def _job() -> dict:
    return {"id": "j1", "domain": "umls", "status": "succeeded",
            "entities": [{"name": "virus", "node_id": "umls:virus"}]}


def _row(relation: str, tail: str) -> dict:
    return {"head": "virus", "relation": relation, "tail": tail, "head_id": "umls:virus", "tail_id": f"umls:{tail}",
            "confidence": 0.5, "sources": [], "evidence": []}


def test_keep_splits_drops_the_held_out_split_only(tmp_path):
    records = load_dataset("umls", _kg_folder(tmp_path))
    kept = keep_splits(records, "train, dev")
    assert set(kept.triples) == {"train", "dev"}
    assert kept.triples["train"] == records.triples["train"]
    assert len(kept.entities) == len(records.entities) == 5  # the held-out split's entities stay nodes
    assert set(records.triples) == {"train", "dev", "test"}  # the loaded records are not changed


@pytest.mark.parametrize(("splits", "reason"), [("train,valid", "valid not among umls's splits"),
                                                (" , ", "name at least one split")])
def test_keep_splits_names_the_option_on_bad_input(tmp_path, splits, reason):
    records = load_dataset("umls", _kg_folder(tmp_path))
    with pytest.raises(InvalidInputError) as error:
        keep_splits(records, splits)
    assert error.value.field == "--splits" and reason in error.value.reason


def test_keep_splits_refuses_a_dataset_without_triple_splits(tmp_path):
    records = load_dataset("umls", _kg_folder(tmp_path))
    bare = dataclasses.replace(records, triples={})
    with pytest.raises(InvalidInputError, match="--splits: umls has no triple splits"):
        keep_splits(bare, "train")


def test_check_marks_held_out_triples_and_counts_them(tmp_path):
    root = _kg_folder(tmp_path)
    # the graph holds train + dev; the job wrote two triples, one of them a test triple
    client = _Client({"umls:virus": [("interacts_with", "umls:animal", None), ("location_of", "umls:hormone", None),
                                     ("isa", "umls:organism", "j1"), ("isa", "umls:animal", "j1")]})
    rows = [_row("isa", "organism"), _row("isa", "animal")]
    check = check_split(_job(), rows, "test", root, entity_neighbours(client, _job()))
    assert [r["held_out"] for r in rows] == [True, False]
    assert check == {"split": "test", "dataset": "umls", "kept": 2, "held_out": 1, "precision": 0.5,
                     "split_triples_of_heads": 2, "split_triples_in_graph": 0}


def test_check_says_when_the_graph_already_holds_the_split(tmp_path):
    root = _kg_folder(tmp_path)
    client = _Client({"umls:virus": [("isa", "umls:organism", None), ("interacts_with", "umls:fish", None)]})
    check = check_split(_job(), [], "test", root, entity_neighbours(client, _job()))
    assert check["split_triples_in_graph"] == 2 and check["kept"] == 0 and check["precision"] is None


def test_check_names_the_option_for_a_split_the_dataset_lacks(tmp_path):
    root = _kg_folder(tmp_path)
    (root / "kg" / "umls" / "test.tsv").unlink()
    with pytest.raises(InvalidInputError) as error:
        check_split(_job(), [], "test", root, {})
    assert error.value.field == "--check-split" and "splits: train, dev" in error.value.reason


def test_submit_refuses_a_bad_check_split_before_submitting(tmp_path, monkeypatch):
    """Nothing reaches the API when --check-split cannot be checked: no job runs for nothing."""
    from typer.testing import CliRunner

    from kgforge.cli import jobs

    posted = []
    monkeypatch.setattr(jobs.Client, "request", lambda self, method, path, **kw: posted.append(path))
    root = _kg_folder(tmp_path)
    runner = CliRunner()
    for args, reason in ((["--check-split", "valid", "--watch"], "'valid' is not a triple split of umls"),
                         (["--check-split", "test"], "needs --watch")):
        result = runner.invoke(jobs.app, ["submit", "--entity", "virus", "--dataset", "umls", "--data-dir", str(root),
                                          *args])
        assert result.exit_code == 1 and reason in result.output, result.output
    assert posted == []


def test_check_names_the_option_for_a_domain_that_is_no_dataset(tmp_path):
    with pytest.raises(InvalidInputError) as error:
        check_split({**_job(), "domain": "mydomain"}, [], "test", _kg_folder(tmp_path), {})
    assert error.value.field == "--check-split" and "mydomain" in error.value.reason


@pytest.mark.integration
def test_import_with_splits_holds_test_out_of_the_real_umls(store, db_env, data_dir):
    done = subprocess.run([sys.executable, "-m", "kgforge", "import", "umls", "--splits", "train,dev", "--no-index",
                           "--data-dir", str(data_dir), "--json"], env=db_env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    records = load_dataset("umls", data_dir)
    expected = len(records.triples["train"]) + len(records.triples["dev"])
    assert sum(json.loads(done.stdout)["edges"].values()) == expected
    assert store.counts().total_edges == expected and store.counts().nodes["Entity"] == 135
    bad = subprocess.run([sys.executable, "-m", "kgforge", "import", "umls", "--splits", "valid", "--no-index",
                          "--data-dir", str(data_dir)], env=db_env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 1 and "--splits: valid not among umls's splits" in bad.stdout + bad.stderr
    assert store.counts().total_edges == expected  # the refused import wrote nothing
