"""The README's first command, end to end, from a fresh ``KGFORGE_HOME``: ``scripts/main_job.sh``
(what ``make run`` runs) starts ``kgforge up``, imports UMLS, trains every model the job needs with
small budgets, submits the entity job over HTTP, follows it and prints its triples.

This is the failure class a new user meets first (a model the script never trains, a default
generator nobody trained, names cut in the printed table), so CI runs it on a temporary home with
no model in it. The budgets are tiny (a minute or so each), so the numbers mean nothing here; the
test checks that the path works and says what it did.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kg_builder.graphdb.embedded import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]
REPO = Path(__file__).resolve().parents[2]


def test_main_job_runs_from_a_fresh_home(tmp_path, data_dir):
    home = tmp_path / "kgforge-home"
    kgforge = Path(sys.executable).with_name("kgforge")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KGFORGE_")}
    env.update({
        "KGFORGE": str(kgforge), "KGFORGE_HOME": str(home), "KGFORGE_DATA_DIR": str(data_dir),
        "KGFORGE_GRAPH_BOLT_PORT": str(free_port()), "KGFORGE_GRAPH_HTTP_PORT": str(free_port()),
        "KGFORGE_API_PORT": str(free_port()),
        "STRUCTURAL_MINUTES": "0.5", "RERANKER_MINUTES": "0.5", "UTILITY_ENTITIES": "60",
        "CONFIDENCE_ENTITIES": "12", "COLUMNS": "80",
    })
    done = subprocess.run(["bash", str(REPO / "scripts" / "main_job.sh")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1400)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert "kgforge is up" in out
    assert "succeeded" in out, out[-4000:]
    # Every model the job needs was trained into the fresh home; the optional dense model was not,
    # and the job says so with the command that trains it.
    for name in ("structural-umls", "relations-umls", "utility-umls", "reranker-umls", "confidence-umls"):
        assert (home / "models" / name).is_dir(), f"{name} missing: {sorted(p.name for p in (home / 'models').iterdir())}"
    words = " ".join(out.split())  # rich wraps long notes at the console width
    assert "kgforge train dense --dataset umls" in words
    # Either triples were written (printed whole: a rich table cuts with an ellipsis) or the job said
    # that nothing cleared the confidence floor.
    assert "triples written by job" in words or "no candidate cleared" in words, out[-4000:]
    assert "\u2026" not in out
    # UMLS's test triples were held out of the import, and the kept triples were checked against them.
    assert "check against umls test (held out of the graph):" in words, out[-4000:]
    assert "already holds" not in words
    if "triples written by job" in words:  # tails by name, not node id (umls:mental_process)
        table = out[out.index("triples written by job"):out.index("Browse the graph")]
        cells = [line.split("\u2502") for line in table.splitlines() if line.count("\u2502") >= 8]
        tails = [row[3] for row in cells]
        assert tails and not any("umls:" in cell for cell in tails), table
        assert "in test" in table and all(row[7].strip() in ("yes", "no", "") for row in cells), table
