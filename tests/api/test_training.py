"""``/v1/training``: bad parameters are 422 naming the field, a missing pretrained model is 409 naming
the command, an accepted run is 202 (persisted, enqueued as ``kgforge.train``) and its status and
progress read back; cancelling; ownership by API key; a dead broker fails the run with 503.

The worker side (a real Celery worker training a real model) is in tests/workers/test_training_task.py."""

from __future__ import annotations

import pytest

from kg_builder.jobs.training_store import TrainingProgress
from kg_builder.models.saved import model_dir
from kg_builder.settings import Settings

from .conftest import API_KEYS, GOOD_KEY, RecordingCelery

OTHER_KEY = API_KEYS.split(",")[0]


def _loc(response) -> list[str]:
    return response.json()["detail"][0]["loc"]


@pytest.mark.parametrize(("kind", "params", "loc", "words"), [
    ("embed_pretrain", {"max_batches": 0}, ["body", "params", "max_batches"], "greater than or equal to 1"),
    ("embed_pretrain", {"max_batches": 10**9}, ["body", "params", "max_batches"], "less than or equal"),
    ("embed_pretrain", {"sources": ["umls"]}, ["body", "params", "sources"], "amazon18_scientific"),
    ("embed_pretrain", {"sources": ["amazon18_games", "amazon18_games"]}, ["body", "params", "sources"], "twice"),
    ("embed_pretrain", {"model": "gat"}, ["body", "params", "model"], "lightgcn"),
    ("embed_pretrain", {"name": "../etc"}, ["body", "params", "name"], "pattern"),
    ("embed_finetune", {"dataset": "fb15k237"}, ["body", "params", "dataset"], "unknown recommendation dataset"),
    ("embed_finetune", {"max_minutes": -1}, ["body", "params", "max_minutes"], "greater than 0"),
    ("embed_finetune", {"data_dir": "/etc"}, ["body", "params", "data_dir"], "Extra inputs"),
    ("embed_finetune", {"min_confidence": 1.5}, ["body", "params", "min_confidence"], "less than or equal to 1"),
    ("rec_train", {"model": "bert"}, ["body", "params", "model"], "sasrec"),
    ("rec_train", {"knowledge": "text+bogus"}, ["body", "params", "knowledge"], "unknown knowledge part"),
    ("no_such_kind", {}, ["body", "kind"], "embed_finetune"),
])
def test_bad_parameters_are_422_naming_the_field(make_client, kind, params, loc, words):
    client = make_client()
    response = client.post("/v1/training", json={"kind": kind, "params": params})
    assert response.status_code == 422, response.text
    assert _loc(response) == loc and words in response.json()["detail"][0]["msg"]
    assert client.app.state.services.celery.sent == []
    assert client.get("/v1/training").json()["total"] == 0  # nothing stored


def test_an_unknown_top_level_field_is_422(make_client):
    response = make_client().post("/v1/training", json={"kind": "embed_pretrain", "budget": 3})
    assert response.status_code == 422 and _loc(response) == ["body", "budget"]


def test_a_missing_pretrained_model_is_409_naming_the_command(make_client):
    client = make_client()
    response = client.post("/v1/training", json={"kind": "embed_finetune",
                                                 "params": {"pretrained": "gnn-nowhere", "max_batches": 5}})
    assert response.status_code == 409, response.text
    assert "kgforge embed pretrain --name gnn-nowhere" in response.json()["detail"]
    assert client.app.state.services.celery.sent == []


def test_an_existing_pretrained_model_is_accepted(make_client, tmp_path):
    from gnn.models import build_model

    client = make_client()
    settings: Settings = client.app.state.services.settings
    build_model("lightgcn", num_nodes={"item": 3, "user": 2}, text_dim=4, dim=8).save(model_dir(settings, "gnn-mine"))
    response = client.post("/v1/training", json={"kind": "embed_finetune",
                                                 "params": {"pretrained": "gnn-mine", "max_batches": 5}})
    assert response.status_code == 202, response.text
    assert response.json()["params"]["pretrained"] == "gnn-mine"


def test_submit_is_202_enqueued_by_name_then_status_and_progress(make_client):
    client = make_client()
    response = client.post("/v1/training", json={"kind": "embed_pretrain",
                                                 "params": {"max_batches": 40, "seed": 3}})
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["status"] == "queued" and run["kind"] == "embed_pretrain"
    # Defaults are filled in and stored, so the run is reproducible from its record.
    assert run["params"] == {"max_minutes": None, "seed": 3, "sources": ["amazon18_games", "amazon14_office"],
                             "model": "lightgcn", "objective": "next_item", "max_batches": 40, "name": "gnn-pretrain"}
    assert run["url"] == f"/v1/training/{run['id']}" and response.headers["location"] == run["url"]
    assert client.app.state.services.celery.sent == [("kgforge.train", [run["id"]])]

    shown = client.get(run["url"]).json()
    assert shown["status"] == "queued" and shown["progress"]["batch"] is None and shown["result"] is None

    # What a worker writes shows in the status (the worker itself: tests/workers/test_training_task.py).
    runs = client.app.state.training_store
    assert runs.claim(run["id"], "host:1:t").claimed
    runs.update_progress(run["id"], "host:1:t", TrainingProgress(stage="pretrain", epoch=1, batch=12,
                                                                  total_batches=40, loss=2.5, elapsed_s=4.2))
    shown = client.get(run["url"]).json()
    assert shown["status"] == "running"
    assert {k: shown["progress"][k] for k in ("stage", "batch", "total_batches", "loss", "elapsed_s")} == {
        "stage": "pretrain", "batch": 12, "total_batches": 40, "loss": 2.5, "elapsed_s": 4.2}

    listed = client.get("/v1/training").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == run["id"]
    assert client.get("/v1/training", params={"status": "succeeded"}).json()["total"] == 0
    assert client.get("/v1/training", params={"kind": "rec_train"}).json()["total"] == 0
    bad = client.get("/v1/training", params={"kind": "nope"})
    assert bad.status_code == 422 and _loc(bad) == ["query", "kind"]
    assert client.get("/v1/training/no-such-run").status_code == 404


def test_cancel_queued_now_running_on_request_finished_409(make_client):
    client = make_client()
    queued = client.post("/v1/training", json={"kind": "rec_train", "params": {"epochs": 1}}).json()
    cancelled = client.delete(queued["url"])
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.delete(queued["url"]).json()["status"] == "cancelled"  # again: a no-op

    running = client.post("/v1/training", json={"kind": "rec_train", "params": {"epochs": 1}}).json()
    runs = client.app.state.training_store
    runs.claim(running["id"], "host:1:t")
    asked = client.delete(running["url"]).json()
    assert asked["status"] == "running" and asked["cancel_requested"] is True

    done = client.post("/v1/training", json={"kind": "rec_train", "params": {"epochs": 1}}).json()
    runs.claim(done["id"], "host:1:t2")
    runs.succeed(done["id"], "host:1:t2", {"name": "x"})
    refused = client.delete(done["url"])
    assert refused.status_code == 409 and "already succeeded" in refused.json()["detail"]
    assert client.delete("/v1/training/no-such-run").status_code == 404


def test_a_dead_broker_is_503_and_the_run_fails_with_the_reason(make_client):
    client = make_client(celery=RecordingCelery(fail=True))
    response = client.post("/v1/training", json={"kind": "embed_pretrain", "params": {}})
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    run = client.get(f"/v1/training/{response.json()['id']}").json()
    assert run["status"] == "failed" and "broker unreachable" in run["error"]


def test_keys_writes_reads_and_ownership(production):
    client = production()
    body = {"kind": "embed_pretrain", "params": {"max_batches": 5}}
    assert client.post("/v1/training", json=body).status_code == 401
    assert client.get("/v1/training").status_code == 401
    mine = client.post("/v1/training", json=body, headers={"Authorization": f"Bearer {GOOD_KEY}"})
    assert mine.status_code == 202
    url = mine.json()["url"]
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    assert client.get(url, headers=other).status_code == 404  # another key's run does not exist for it
    assert client.delete(url, headers=other).status_code == 404
    assert client.get("/v1/training", headers=other).json()["total"] == 0
    own = {"Authorization": f"Bearer {GOOD_KEY}"}
    assert client.get(url, headers=own).json()["status"] == "queued"
    assert client.get("/v1/training", headers=own).json()["total"] == 1
