"""`kgforge embed list | export | delete` on a temporary home, in process (CliRunner)."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from gnn.exports import read_parquet
from gnn.store import EmbeddingSet, EmbeddingStore
from kg_builder.settings import Settings
from kgforge.cli import app

IDS = ["amazon:B001", "amazon:B002", "amazon14_office:category:6"]


def test_list_export_and_delete_a_set(tmp_path, monkeypatch):
    monkeypatch.setenv("KGFORGE_HOME", str(tmp_path / "home"))
    store = EmbeddingStore(Settings(home=tmp_path / "home"))
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    store.save(EmbeddingSet.create("office-text", vectors, IDS, model="minilm", domain="amazon14_office"))
    runner = CliRunner()

    listed = runner.invoke(app, ["embed", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (meta,) = json.loads(listed.output)
    assert meta["name"] == "office-text" and meta["version"] == 1 and meta["count"] == 3

    out = tmp_path / "out"
    exported = runner.invoke(app, ["embed", "export", "office-text", "--format", "parquet", "--out", str(out), "--json"])
    assert exported.exit_code == 0, exported.output
    (path,) = json.loads(exported.output)["files"]
    ids, back = read_parquet(path)
    assert ids == IDS and np.array_equal(back, vectors)

    missing = runner.invoke(app, ["embed", "export", "no-such-set"])
    assert missing.exit_code != 0 and "no-such-set" in missing.output
    deleted = runner.invoke(app, ["embed", "delete", "office-text"])
    assert deleted.exit_code == 0 and store.list() == []


def test_refresh_of_an_unknown_set_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KGFORGE_HOME", str(tmp_path / "home"))
    refreshed = CliRunner().invoke(app, ["embed", "refresh", "no-such-set"])
    assert refreshed.exit_code != 0 and "no-such-set" in refreshed.output
