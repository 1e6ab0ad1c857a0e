"""`kgforge import` as a user runs it: a subprocess against the session's embedded database."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from kg_builder.datasets import load_dataset

pytestmark = pytest.mark.integration


def kgforge(*args: str, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kgforge", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_import_umls_twice_leaves_counts_unchanged(store, db_env, data_dir):
    first = kgforge("import", "umls", "--data-dir", str(data_dir), env=db_env)
    assert first.returncode == 0, first.stderr
    assert "triples" in first.stderr and "6529/6529" in first.stderr  # the progress bar, completed
    counts = store.counts()
    assert counts.nodes["Entity"] == 135 and counts.total_edges == 6529
    second = kgforge("import", "umls", "--json", env=db_env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["nodes"]["Entity"] == 135
    assert store.counts() == counts


def test_import_wn18rr_with_progress(store, db_env, data_dir):
    result = kgforge("import", "wn18rr", "--data-dir", str(data_dir), "--no-index", env=db_env)
    assert result.returncode == 0, result.stderr
    assert "40943/40943" in result.stderr and "89869/89869" in result.stderr
    counts = store.counts()
    assert counts.nodes["Entity"] == 40_943
    assert counts.total_edges == 86_835 + 3_034
    assert store.count_duplicate_edges() == 0


def test_sigkill_halfway_then_rerun_leaves_no_duplicates(store, db_env, data_dir):
    """Kill an import while it writes triples; the rerun completes it without duplicating anything."""
    env = {**db_env, "KGFORGE_GRAPH_BATCH_SIZE": "100"}
    proc = subprocess.Popen([sys.executable, "-m", "kgforge", "import", "umls"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        edges = 0
        while time.monotonic() < deadline:
            edges = store.counts().total_edges
            if edges >= 1000:
                break
            assert proc.poll() is None, "the import finished before it could be killed"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    partial = store.counts().total_edges
    assert 1000 <= partial < 6529, f"killed at {partial} edges: not halfway"

    rerun = kgforge("import", "umls", env=db_env)
    assert rerun.returncode == 0, rerun.stderr
    dataset = load_dataset("umls", data_dir)
    expected = {(f"umls:{t.head}", t.relation, f"umls:{t.tail}") for t in dataset.all_triples()}
    found = [(t.head, t.relation, t.tail) for t in store.export_triples()]
    assert len(found) == len(set(found)) == len(expected)
    assert set(found) == expected
    assert store.counts().nodes["Entity"] == 135
    assert store.count_duplicate_edges() == 0


def test_unknown_dataset_and_missing_data_dir_give_clear_errors(db_env, tmp_path):
    unknown = kgforge("import", "nope", env=db_env)
    assert unknown.returncode == 1 and "umls" in unknown.stderr and "Traceback" not in unknown.stderr
    missing = kgforge("import", "umls", "--data-dir", str(tmp_path / "absent"), env=db_env)
    assert missing.returncode == 1 and "absent" in missing.stderr and "Traceback" not in missing.stderr
